"""The eval set: a JSONL file of items the profiler asks every pair, scored per task.

One JSON object per line (blank lines are allowed and are not items)::

    {"id": "gsm8k-0007", "prompt": "...", "tier": "complex", "intent": "math",
     "scorer": "numeric", "expected": "18", "tolerance": 0.01, "max_output_tokens": 256, "stop": ["\\n\\n"]}

Fields:
- ``prompt`` (a raw prompt) or ``messages`` (a chat: ``[{"role": "system"|"user"|"assistant", "content": str}]``):
  exactly one. Required.
- ``tier``: ``simple`` | ``complex`` | ``hard`` (the router's complexity tiers). Required.
- ``intent``: one of the router's task intents (``classification``, ``math``, ...). Required.
- ``scorer``: how the output is scored (`tools.profiler.scoring`); default ``exact_match``:
  - ``exact_match``: ``expected`` is a string or a list of accepted strings, compared after normalisation;
  - ``multiple_choice``: ``expected`` is a letter (``A``..); ``num_choices`` (default 4) bounds the letters;
  - ``numeric``: ``expected`` is a number (or a numeric string such as "1,234"); ``tolerance`` (absolute, default
    1e-6) and ``relative_tolerance`` (default 0) as in `math.isclose`;
  - ``regex``: a checker: ``pattern`` (Python syntax) must be found in the output (``expected`` unused).
- ``id``: unique per file (default ``line-<N>``); ``max_output_tokens`` (default: the run's setting); ``stop``: stop
  strings passed to the worker (at most 8); ``source``: where the item comes from (dataset file and line), shown in
  the report beside each graded answer.

Unknown fields are errors (a typo must not silently change the scoring). Every malformed line is reported with its
line number and nothing is skipped: `load_eval_set` raises `EvalSetError` listing each problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.vocabulary import KnownIntent, KnownTier

MAX_STOP_STRINGS = 8  # the worker's limit (quantmesh.common.v1.SamplingParams.stop)
MAX_LETTERS = 26


class Scorer(StrEnum):
    EXACT_MATCH = "exact_match"
    MULTIPLE_CHOICE = "multiple_choice"
    NUMERIC = "numeric"
    REGEX = "regex"


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


NUMBER_PATTERN = re.compile(r"^[+-]?(?:\d[\d,]*)?(?:\.\d+)?(?:[eE][+-]?\d+)?$")


def parse_number(text: str) -> float | None:
    """A number written as text ("1,234", "-0.5", "$18", "18.") or None; thousands separators are dropped."""
    cleaned = text.strip().lstrip("$").rstrip(".").replace(",", "")
    if not cleaned or not NUMBER_PATTERN.match(cleaned) or not any(ch.isdigit() for ch in cleaned):
        return None
    return float(cleaned)


class EvalItem(BaseModel):
    """One eval item (field meanings in the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=128)
    prompt: str | None = Field(None, min_length=1)
    messages: Annotated[tuple[ChatTurn, ...], Field(min_length=1)] | None = None
    tier: KnownTier
    intent: KnownIntent
    scorer: Scorer = Scorer.EXACT_MATCH
    expected: str | float | list[str] | None = None
    pattern: str | None = None
    tolerance: float = Field(1e-6, ge=0)
    relative_tolerance: float = Field(0.0, ge=0)
    num_choices: int = Field(4, ge=2, le=MAX_LETTERS)
    max_output_tokens: int | None = Field(None, ge=1)
    stop: tuple[str, ...] = Field((), max_length=MAX_STOP_STRINGS)
    source: str | None = Field(None, max_length=256)

    @field_validator("stop")
    @classmethod
    def _non_empty_stops(cls, stop: tuple[str, ...]) -> tuple[str, ...]:
        if any(not text for text in stop):
            raise ValueError("stop strings must not be empty")
        return stop

    @model_validator(mode="after")
    def _check_scorer_fields(self) -> EvalItem:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        expected = self.expected
        if self.scorer is Scorer.REGEX:
            if not self.pattern:
                raise ValueError("scorer regex needs a pattern")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a valid regular expression: {exc}") from None
        elif self.pattern is not None:
            raise ValueError(f"pattern is only for scorer regex, not {self.scorer.value}")
        if self.scorer is Scorer.EXACT_MATCH:
            answers = expected if isinstance(expected, list) else [expected]
            if not answers or not all(isinstance(answer, str) and answer.strip() for answer in answers):
                raise ValueError("scorer exact_match needs expected: a non-empty string or list of strings")
        elif self.scorer is Scorer.MULTIPLE_CHOICE:
            letters = choice_letters(self.num_choices)
            if not isinstance(expected, str) or expected.strip().upper() not in letters:
                raise ValueError(f"scorer multiple_choice needs expected: one letter of {''.join(letters)}")
        elif self.scorer is Scorer.NUMERIC and not _is_number(expected):
            raise ValueError("scorer numeric needs expected: a number")
        return self

    @property
    def reference_text(self) -> str:
        """The text a person wrote: the prompt, or the chat messages' contents joined by newlines."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(turn.content for turn in self.messages or ())

    @property
    def expected_number(self) -> float:
        """The expected value of a numeric item."""
        value = self.expected
        return float(value) if isinstance(value, float | int) else parse_number(str(value))  # type: ignore[return-value]


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, float | int) or (isinstance(value, str) and parse_number(value) is not None)


def choice_letters(count: int) -> tuple[str, ...]:
    """The first `count` capital letters ("A", "B", ...)."""
    return tuple(chr(ord("A") + index) for index in range(count))


class EvalSetError(ValueError):
    """The eval file is unreadable or has malformed lines.

    Attributes:
        errors: One message per problem, each starting with "line N:" (1-based) where a line is at fault.
    """

    def __init__(self, path: Path, errors: list[str]) -> None:
        super().__init__(f"{path}: {len(errors)} problem(s):\n" + "\n".join(errors))
        self.path = path
        self.errors = errors


def _format_validation_error(error: dict) -> str:
    path = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{path}: {message}" if path else message


def parse_eval_lines(lines: Iterable[str], path: Path = Path("<eval set>")) -> list[EvalItem]:
    """Parses JSONL lines into items (see the module docstring).

    Raises:
        EvalSetError: any line is not a JSON object, has an invalid field, or repeats an id; or there is no item.
            Every problem of every line is listed, with its line number.
    """
    items: list[EvalItem] = []
    errors: list[str] = []
    first_line_of_id: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(raw, dict):
            errors.append(f"line {number}: must be a JSON object, got {type(raw).__name__}")
            continue
        raw.setdefault("id", f"line-{number}")
        try:
            item = EvalItem.model_validate(raw)
        except ValidationError as exc:
            errors.extend(f"line {number}: {_format_validation_error(error)}" for error in exc.errors())
            continue
        if item.id in first_line_of_id:
            errors.append(f"line {number}: id {item.id!r} repeats line {first_line_of_id[item.id]}")
            continue
        first_line_of_id[item.id] = number
        items.append(item)
    if not items and not errors:
        errors.append("no items (the file is empty)")
    if errors:
        raise EvalSetError(path, errors)
    return items


def load_eval_set(path: Path) -> list[EvalItem]:
    """Reads and parses an eval JSONL file.

    Raises:
        EvalSetError: unreadable file, or malformed lines (see `parse_eval_lines`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalSetError(path, [f"cannot read the file: {exc}"]) from exc
    return parse_eval_lines(text.splitlines(), path)
