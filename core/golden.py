"""Golden prompts: known prompts whose greedy continuation must contain an expected text.

Written next to a model by whatever builds or converts it (`tools.tiny_model`), and checked by the worker before it
reports SERVING (`services.worker.golden`), so that weights that load but answer gibberish are never served.

File format (JSON): `[{"prompt": str, "expected": str, "max_output_tokens": int (optional, default 4)}, ...]`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GoldenPrompt:
    """A prompt and a substring its greedy continuation must contain.

    Attributes:
        prompt: Raw text passed to the model as is (no chat template).
        expected: Substring expected in the first `max_output_tokens` generated tokens.
        max_output_tokens: How many tokens to generate for the check.
    """

    prompt: str
    expected: str
    max_output_tokens: int = 4


def load_golden_prompts(path: Path) -> list[GoldenPrompt]:
    """Reads a golden-prompt file.

    Raises:
        ValueError: the file is not a non-empty JSON list of {prompt, expected[, max_output_tokens]} objects.
    """
    try:
        rows = json.loads(path.read_text())
        prompts = [GoldenPrompt(**row) for row in rows]
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"golden prompt file {path} is malformed: {exc}") from exc
    if not prompts or any(not p.prompt or not p.expected or p.max_output_tokens < 1 for p in prompts):
        raise ValueError(f"golden prompt file {path} needs non-empty prompts and expectations")
    return prompts
