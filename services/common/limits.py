"""Size limits on request content, beyond gRPC's own message limit (`ServerSettings.max_message_bytes`)."""

from __future__ import annotations

from core.errors import InvalidArgumentError


def validate_prompt_size(text: str, max_bytes: int, field: str = "prompt") -> None:
    """Refuses a prompt (or rendered chat) larger than `max_bytes` UTF-8 bytes.

    Raises:
        InvalidArgumentError: naming `field`, with the size and the limit (the text itself is never echoed).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidArgumentError(f"{field}: {size} bytes, over the {max_bytes}-byte limit")
