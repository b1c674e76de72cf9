"""Size limits on request content, beyond gRPC's own message limit (`ServerSettings.max_message_bytes`)."""

from __future__ import annotations

from services.common.errors import InvalidArgument


def validate_prompt_size(text: str, max_bytes: int, field: str = "prompt") -> None:
    """Refuses a prompt (or rendered chat) larger than `max_bytes` UTF-8 bytes.

    Raises:
        InvalidArgument: naming `field`, with the size and the limit (the text itself is never echoed).
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidArgument(f"{field}: {size} bytes, over the {max_bytes}-byte limit")
