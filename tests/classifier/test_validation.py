"""Text checks: the field is named and the limit is in UTF-8 bytes."""

import pytest

from core.errors import InvalidArgumentError
from services.classifier.validation import validate_text


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        validate_text(text, 100)
    assert raised.value.message.startswith("text: must not be empty")


def test_limit_counts_utf8_bytes() -> None:
    validate_text("é" * 50, 100)  # 100 bytes: accepted
    with pytest.raises(InvalidArgumentError, match="text: 102 bytes exceeds the limit of 100 bytes"):
        validate_text("é" * 51, 100)
