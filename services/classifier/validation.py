"""Checks of a request's text before it is classified (pure; raises `InvalidArgumentError`)."""

from __future__ import annotations

from core.errors import InvalidArgumentError


def validate_text(text: str, max_text_bytes: int) -> None:
    """Accepts a non-empty text of at most `max_text_bytes` UTF-8 bytes.

    Raises:
        InvalidArgumentError: `text` is empty (or only whitespace), or longer than `max_text_bytes` (INVALID_ARGUMENT).
    """
    if not text.strip():
        raise InvalidArgumentError("text: must not be empty")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_text_bytes:
        raise InvalidArgumentError(f"text: {size} bytes exceeds the limit of {max_text_bytes} bytes")
