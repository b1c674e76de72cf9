"""`quantmesh up` reuses a measured profile document only while its provenance matches; otherwise it measures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.mesh.mesh_config import MeasureConfig
from tools.mesh.processes import free_port
from tools.mesh.profiling import (
    ProfilingError,
    expected_provenance,
    is_current,
    measure_profiles,
    provenance_path,
)
from tools.models.dequantize import PROVENANCE_FILE


@pytest.fixture
def setup(tmp_path: Path):
    eval_path = tmp_path / "eval.jsonl"
    eval_path.write_text('{"id": "a", "prompt": "2+2", "tier": "simple", "intent": "math", "scorer": "numeric", '
                         '"expected": 4}\n')
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / PROVENANCE_FILE).write_text('{"model": "m", "weights": "bf16"}\n')
    document = tmp_path / "profiles" / "real.json"
    document.parent.mkdir()
    return MeasureConfig(eval=eval_path), [("m", "none", str(checkpoint))], document, checkpoint


def _record(document: Path, provenance: dict) -> None:
    document.write_text("{}")
    provenance_path(document).write_text(json.dumps(provenance | {"eval": "somewhere"}))


def test_a_document_with_the_same_provenance_is_current(setup) -> None:
    measure, pairs, document, _ = setup
    assert not is_current(document, expected_provenance(measure, pairs))  # nothing written yet
    _record(document, expected_provenance(measure, pairs))
    assert is_current(document, expected_provenance(measure, pairs))


def test_a_document_measured_on_more_pairs_serves_a_mesh_of_fewer(setup) -> None:
    measure, pairs, document, checkpoint = setup
    _record(document, expected_provenance(measure, [*pairs, ("m", "w8a8", str(checkpoint))]))
    assert is_current(document, expected_provenance(measure, pairs))


@pytest.mark.parametrize("change", ["eval", "checkpoint", "price", "pairs"])
def test_a_changed_eval_set_checkpoint_price_or_pair_makes_it_stale(setup, change: str) -> None:
    measure, pairs, document, checkpoint = setup
    _record(document, expected_provenance(measure, pairs))
    if change == "eval":
        measure.eval.write_text(measure.eval.read_text().replace('"expected": 4', '"expected": 5'))
    elif change == "checkpoint":
        (checkpoint / PROVENANCE_FILE).write_text('{"model": "m", "weights": "w8a8"}\n')
    elif change == "price":
        measure = measure.model_copy(update={"price_per_hour_usd": 1.0})
    else:
        pairs = [*pairs, ("m", "w8a8", str(checkpoint))]
    assert not is_current(document, expected_provenance(measure, pairs))


def test_a_current_document_is_reused_without_calling_any_worker(setup) -> None:
    measure, pairs, document, _ = setup
    _record(document, expected_provenance(measure, pairs))
    messages: list[str] = []
    measure_profiles(document, measure, [f"127.0.0.1:{free_port()}"], pairs, messages.append)  # nobody listens
    assert messages and "reusing" in messages[0]


def test_a_stale_document_is_measured_and_a_failed_run_writes_nothing(setup) -> None:
    measure, pairs, document, _ = setup
    with pytest.raises(ProfilingError, match="no profile was written"):
        measure_profiles(document, measure.model_copy(update={"concurrency": (1,)}),
                         [f"127.0.0.1:{free_port()}"], pairs, lambda message: None)
    assert not document.exists() and not provenance_path(document).exists()
