"""The start-up golden-prompt check: greedy continuations of known prompts must contain the expected text.

Why: corrupt or mis-quantized weights (a broken AWQ conversion, a wrong scale) usually load without error and produce
gibberish; the worker must not report SERVING with them. The check runs after the engine starts and before health
turns SERVING; a failure is logged (`golden_check_failed`, with each prompt, expectation and output) and the worker
stays NOT_SERVING. The prompts' file format is `core.golden`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.golden import GoldenPrompt
from services.worker.engine import GREEDY, Engine, GenerationRequest


@dataclass(frozen=True)
class GoldenFailure:
    """A prompt whose greedy continuation lacked the expected text."""

    prompt: str
    expected: str
    output: str


def failure_of(golden: GoldenPrompt, output: str) -> GoldenFailure | None:
    """The failure, or None when `output` contains the expected text."""
    return None if golden.expected in output else GoldenFailure(golden.prompt, golden.expected, output)


async def run_golden_check(engine: Engine, prompts: list[GoldenPrompt]) -> list[GoldenFailure]:
    """Greedy-decodes every prompt on `engine`; returns the failures (empty: the check passed)."""
    failures = []
    for golden in prompts:
        request = GenerationRequest(
            request_id=f"golden-{uuid.uuid4().hex}",
            prompt_token_ids=engine.tokenize_prompt(golden.prompt),
            max_output_tokens=golden.max_output_tokens,
            sampling=GREEDY,
        )
        output = "".join([delta.text async for delta in engine.generate(request)])
        failure = failure_of(golden, output)
        if failure is not None:
            failures.append(failure)
    return failures
