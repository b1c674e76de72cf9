"""Text checks: the field is named and the limit is in UTF-8 bytes."""

import pytest

from services.classifier.validation import validate_text
from services.common.errors import InvalidArgument


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text(text: str) -> None:
    with pytest.raises(InvalidArgument, match="^text: must not be empty"):
        validate_text(text, 100)


def test_limit_counts_utf8_bytes() -> None:
    validate_text("é" * 50, 100)  # 100 bytes: accepted
    with pytest.raises(InvalidArgument, match="text: 102 bytes exceeds the limit of 100 bytes"):
        validate_text("é" * 51, 100)
