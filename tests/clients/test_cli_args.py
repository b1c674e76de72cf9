"""Command-line parsing: global options before or after the command, and `up`'s overrides of the sample (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.cli import _sample_with_overrides, build_parser, requirements_from
from core.vocabulary import RoutingMode
from tools.mesh.mesh_config import SampleConfig


def test_global_options_work_before_and_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--router", "h:1", "--budget-ms", "300", "route", "hi"])
    after = parser.parse_args(["route", "hi", "--router", "h:1", "--budget-ms", "300"])
    for args in (before, after):
        assert args.router == "h:1" and requirements_from(args).latency_budget_ms == 300
    defaults = requirements_from(parser.parse_args(["route", "hi"]))
    assert (defaults.latency_budget_ms, defaults.max_output_tokens, defaults.mode) == (5000, 64,
                                                                                       RoutingMode.CHEAPEST)
    assert requirements_from(parser.parse_args(["route", "hi", "--mode", "interactive"])).mode is RoutingMode.INTERACTIVE


def test_up_overrides_only_what_was_given() -> None:
    sample = SampleConfig(required_accuracy_by_source={"gsm8k": 0.8})
    args = build_parser().parse_args(["up", "--per-source", "1", "--budget-ms", "900", "--data-dir", "/d"])
    changed = _sample_with_overrides(sample, args)
    assert changed.counts == {source: 1 for source in sample.counts}
    assert changed.requirements.latency_budget_ms == 900
    assert changed.requirements.max_output_tokens == sample.requirements.max_output_tokens
    assert changed.required_accuracy("gsm8k") == 0.8 and changed.data_dir == Path("/d")
    everywhere = _sample_with_overrides(sample, build_parser().parse_args(["up", "--accuracy", "0.3"]))
    assert everywhere.required_accuracy("gsm8k") == everywhere.required_accuracy("clinc150") == 0.3


def test_up_with_an_invalid_config_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clients.cli import main

    config = tmp_path / "mesh.yaml"
    config.write_text("workers: [{name: a, model: 'tiny:s'}]\n")
    assert main(["up", "--config", str(config)]) == 2
    assert "no `profile` block" in capsys.readouterr().err
