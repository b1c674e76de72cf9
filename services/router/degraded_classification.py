"""Rule-based classification used when the classifier cannot be reached; every decision using it is flagged.

The rules are deliberately simple, documented, and lean towards the harder tier when in doubt: a wrongly "hard"
query costs money, a wrongly "simple" one costs a wrong answer.
- Input tokens: ceil(characters / 4), the usual ~4 characters per token of English under BPE tokenizers
  (OpenAI's tokenizer guidance); the classifier's reference tokenizer is not available here.
- Numeric-token share: among word and punctuation tokens (regex `\\w+|[^\\w\\s]`), the share containing a digit.
- ComplexityTier: HARD when the text is long (> `HARD_MIN_CHARS`) or names a multi-step task (`HARD_KEYWORDS`: prove, derive,
  step by step, ...); COMPLEX when it is medium length (> `COMPLEX_MIN_CHARS`), asks for analysis
  (`COMPLEX_KEYWORDS`), contains code, or is numeric-heavy (share > 0.2); otherwise SIMPLE.
- TaskIntent: the first matching keyword group in `INTENT_KEYWORDS`'s order; a question mark alone means question
  answering; else OTHER.
"""

from __future__ import annotations

import math
import re

from core.classification import Classification
from core.vocabulary import ComplexityTier, TaskIntent

HARD_MIN_CHARS = 2000
COMPLEX_MIN_CHARS = 500
NUMERIC_HEAVY_SHARE = 0.2
HARD_KEYWORDS = ("prove", "proof", "derive", "step by step", "step-by-step", "theorem", "optimiz", "optimis",
                 "complexity of", "design a", "architecture")
COMPLEX_KEYWORDS = ("explain", "compare", "analy", "why ", "evaluate", "trade-off", "tradeoff", "implement")
INTENT_KEYWORDS: tuple[tuple[TaskIntent, tuple[str, ...]], ...] = (
    (TaskIntent.CODE, ("```", "def ", "function", "python", "javascript", "code", "bug", "compile", "sql")),
    (TaskIntent.MATH, ("calculate", "solve", "equation", "how many", "how much", "sum of", "percent", "integral")),
    (TaskIntent.SUMMARIZATION, ("summar", "tl;dr", "tldr", "condense")),
    (TaskIntent.EXTRACTION, ("extract", "list all", "pull out", "find all")),
    (TaskIntent.CLASSIFICATION, ("classify", "categor", "label", "sentiment", "which category")),
    (TaskIntent.CREATIVE, ("poem", "story", "write a song", "slogan", "haiku", "lyrics")),
    (TaskIntent.REASONING, ("why", "reason", "logic", "deduce", "infer")),
    (TaskIntent.CHAT, ("hello", "hi ", "hey", "thanks", "thank you", "how are you")),
)
_TOKEN = re.compile(r"\w+|[^\w\s]")
_CODE = re.compile(r"```|\bdef \w+\(|\bclass \w+[:(]|[{};]\s*$", re.MULTILINE)

DEGRADED_MODEL_VERSION = "degraded-rules-v1"


def numeric_token_share(text: str) -> float:
    """Share of word/punctuation tokens that contain a digit, in [0, 1] (0 for an empty text)."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return 0.0
    return sum(any(ch.isdigit() for ch in token) for token in tokens) / len(tokens)


def _tier(text: str, lowered: str, numeric_share: float) -> ComplexityTier:
    if len(text) > HARD_MIN_CHARS or any(keyword in lowered for keyword in HARD_KEYWORDS):
        return ComplexityTier.HARD
    if (len(text) > COMPLEX_MIN_CHARS or any(keyword in lowered for keyword in COMPLEX_KEYWORDS)
            or _CODE.search(text) or numeric_share > NUMERIC_HEAVY_SHARE):
        return ComplexityTier.COMPLEX
    return ComplexityTier.SIMPLE


def _intent(lowered: str) -> TaskIntent:
    for intent, keywords in INTENT_KEYWORDS:
        if any(keyword in lowered for keyword in keywords):
            return intent
    return TaskIntent.QUESTION_ANSWERING if "?" in lowered else TaskIntent.OTHER


def classify_degraded(text: str) -> Classification:
    """Classifies `text` by the rules above (no I/O, microseconds)."""
    lowered = text.lower()
    share = numeric_token_share(text)
    return Classification(
        tier=_tier(text, lowered, share),
        intent=_intent(lowered),
        numeric_token_share=share,
        estimated_input_tokens=math.ceil(len(text) / 4),
        model_version=DEGRADED_MODEL_VERSION,
    )
