"""docs/settings.md is what `tools.settings_reference` renders from the settings classes, and `--check` says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import settings_reference
from tools.settings_reference import SETTINGS_DOC, main, render


def test_committed_reference_is_current() -> None:
    assert SETTINGS_DOC.read_text() == render(), (
        "docs/settings.md is out of date: run `python -m tools.settings_reference`")


def test_every_variable_is_listed() -> None:
    text = render()
    for _, settings in settings_reference.SERVICES:
        prefix = settings.model_config["env_prefix"]
        for name in settings.model_fields:
            assert f"| `{prefix}{name.upper()}` |" in text


def test_check_fails_on_a_stale_file_and_passes_once_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_reference, "SETTINGS_DOC", tmp_path / "settings.md")
    assert main(["--check"]) == 1  # missing
    (tmp_path / "settings.md").write_text("stale\n")
    assert main(["--check"]) == 1
    assert main([]) == 0
    assert main(["--check"]) == 0
