"""The question a text asks, without its wrapping: the part the complexity and intent heads score.

Real traffic wraps the question: a chat transcript with a system prompt and earlier turns, worked examples before it
(few-shot), retrieved passages (RAG). The heads were trained on bare questions, and the wrapping alone moves them
(length and number counts grow with every example: before this step every 5-shot GSM8K question scored tier HARD).
`focus` keeps what is asked last, by the markers these formats use:

1. A transcript in `core.classification.chat_text` form ("role: content" lines): its last user turn alone, still as
   a "user: content" line, so that a one-turn transcript (what the router classifies for a single message) is
   unchanged and a system prompt or earlier turns before it change nothing.
2. In that content, when it holds two or more question markers ("Q:", "Question:", "Problem:" at a line start), or
   one after a context marker ("Context:", "Passage:", "Document:", "Retrieved ...:", "Sources:"): the text after
   the last question marker.
3. Otherwise, when lines start with a completed "Answer: <something>" (worked examples in MMLU's 5-shot format):
   the text after the paragraph holding the last completed answer.

A text with none of these markers is returned unchanged (every training and evaluation prompt of the shipped
artifact is: `tests/classifier/test_focus.py`). Unmarked context (passages pasted without a label) is not detected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TURN = re.compile(r"^(system|developer|user|assistant|tool): ", re.MULTILINE)
_QUESTION = re.compile(r"^[ \t]*(?:Q|Question|Problem)[ \t]*\d*[ \t]*[:.][ \t]*", re.MULTILINE | re.IGNORECASE)
_CONTEXT = re.compile(
    r"^[ \t]*(?:Context|Passage|Document|Retrieved[^:\n]{0,40}|Sources?)[ \t]*\d*[ \t]*:", re.MULTILINE | re.IGNORECASE
)
_COMPLETED_ANSWER = re.compile(r"^[ \t]*Answer[ \t]*:[ \t]*\S[^\n]*$", re.MULTILINE)


@dataclass(frozen=True)
class Focus:
    """The question of a text: `text` is what the heads' token and structure features score; `bare_text` is the same
    without the transcript's "user: " prefix, what the encoder reads (it was trained on bare questions, and every
    text the router classifies is a transcript); `wrapped` is True when `focus` removed anything but that prefix."""

    text: str
    wrapped: bool
    bare_text: str


def focus(text: str) -> Focus:
    """The question `text` asks (see the module docstring for the rules). Never empty for a non-blank text: a rule
    that would leave only blanks is not applied."""
    prefix, content = _last_user_turn(text)
    question = _after_last_question_marker(content) or _after_last_completed_answer(content) or content
    return Focus(prefix + question, prefix + question != text, question)


def _last_user_turn(text: str) -> tuple[str, str]:
    """("user: ", the last user turn's content) if `text` is a "role: content" transcript starting with a role and
    holding a user turn, else ("", `text`)."""
    turns = list(_TURN.finditer(text))
    if not turns or turns[0].start() != 0:
        return "", text
    user_turns = [
        (match.end(), turns[index + 1].start() - 1 if index + 1 < len(turns) else len(text))  # less chat_text's "\n"
        for index, match in enumerate(turns)
        if match.group(1) == "user"
    ]
    if not user_turns:
        return "", text
    start, end = user_turns[-1]
    content = text[start:end]
    return ("user: ", content) if content.strip() else ("", text)


def _after_last_question_marker(text: str) -> str:
    """The text after the last question marker, if there are two or more markers or one follows a context marker;
    "" otherwise."""
    markers = list(_QUESTION.finditer(text))
    if not markers:
        return ""
    last = markers[-1]
    if len(markers) < 2 and not any(context.start() < last.start() for context in _CONTEXT.finditer(text)):
        return ""
    return text[last.end() :].strip()


def _after_last_completed_answer(text: str) -> str:
    """The text after the paragraph of the last completed "Answer: X" line, if any text follows it; "" otherwise."""
    answers = list(_COMPLETED_ANSWER.finditer(text))
    if not answers:
        return ""
    paragraph_end = text.find("\n\n", answers[-1].end())
    return text[paragraph_end:].strip() if paragraph_end != -1 else ""
