"""The prompts of the latency and throughput runs: the eval set's own (its real length distribution), or synthetic
prompts of given lengths (a distribution the user states, in reference tokens)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer

from core.classifier_model.reference_tokenizer import ReferenceTokenizer
from tools.profiler.eval_set import ChatTurn, EvalItem


@dataclass(frozen=True)
class LoadPrompt:
    """One load-test input (exactly one of prompt and messages is set)."""

    prompt: str | None
    messages: tuple[ChatTurn, ...] | None = None


def from_eval_set(items: Sequence[EvalItem], count: int, seed: int) -> list[LoadPrompt]:
    """`count` prompts drawn from the eval items (with replacement, seeded), so lengths follow the eval set's.

    Raises:
        ValueError: no items or a negative count.
    """
    if not items or count < 0:
        raise ValueError("need at least one eval item and a non-negative count")
    rng = random.Random(seed)
    return [LoadPrompt(item.prompt, item.messages) for item in rng.choices(list(items), k=count)]


def synthetic(lengths: Sequence[int], count: int, source_texts: Sequence[str], tokenizer: ReferenceTokenizer,
              seed: int) -> list[LoadPrompt]:
    """`count` raw prompts whose lengths (in reference tokens) are drawn from `lengths` (seeded, with replacement).

    Each prompt is a prefix of `source_texts` joined and repeated until it holds enough tokens, cut at a whole
    number of reference tokens (so it reads like the user's text, not random tokens).

    Raises:
        ValueError: no lengths, a length below 1, or source texts with no tokens.
    """
    if not lengths or min(lengths) < 1:
        raise ValueError("prompt lengths must be at least 1 token")
    corpus_ids = tokenizer.encode(" ".join(source_texts))
    if not corpus_ids:
        raise ValueError("the source texts have no tokens")
    longest = max(lengths)
    ids = (corpus_ids * (longest // len(corpus_ids) + 1))[:longest]
    # ReferenceTokenizer encodes only; the same JSON file decodes.
    decoder = Tokenizer.from_str(tokenizer.path.read_text())
    rng = random.Random(seed)
    return [LoadPrompt(decoder.decode(ids[:length])) for length in rng.choices(list(lengths), k=count)]
