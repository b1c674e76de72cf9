"""The main job on measured profiles: `quantmesh up --run-sample` with `profiles.measure` and a `comparison`.

On the session's two tiny vLLM workers (given by address, as in test_up_sample.py): the first run profiles both
pairs with the profiler on a small graded eval set (the tiny models' own facts), writes the document, its report
and its provenance, chooses each task's threshold on those graded answers, runs both arms on held-out items and
prints the before/after table; the second run reuses the document.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.profiles import parse_profile_document
from tests.fixtures.mesh import LOCAL_MESH_CONFIG
from tools.mesh.mesh import MeshEndpoints
from tools.mesh.profiling import provenance_path

pytestmark = pytest.mark.vllm

FACTS = [("The capital of France is", "Paris"), ("The capital of Japan is", "Tokyo"), ("Two plus two is", "four"),
         ("The colour of grass is", "green"), ("The capital of Italy is", "Rome"), ("The capital of Spain is", "Madrid")]


def _items(prefix: str, facts: list[tuple[str, str]]) -> str:
    tiers = ("simple", "complex", "hard")
    lines = [{"id": f"{prefix}-{'facts' if i % 2 else 'capitals'}-{i}", "prompt": prompt, "tier": tiers[i % 3],
              "intent": "question_answering", "scorer": "regex", "pattern": answer, "max_output_tokens": 4}
             for i, (prompt, answer) in enumerate(facts)]
    return "".join(json.dumps(line) + "\n" for line in lines)


def _run_up(config_path: Path, results_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clients.cli", "up", "--config", str(config_path), "--run-sample",
         "--results-json", str(results_path)],
        env={**os.environ, "COLUMNS": "220"}, capture_output=True, text=True, timeout=900, check=False,
    )


def test_up_profiles_the_pairs_then_compares_always_best_with_routed(mesh: MeshEndpoints, tmp_path: Path) -> None:
    local = yaml.safe_load(LOCAL_MESH_CONFIG.read_text())
    addresses = {w.name: w.address for w in mesh.workers}
    (tmp_path / "profile.jsonl").write_text(_items("profile", FACTS))
    (tmp_path / "heldout.jsonl").write_text(_items("heldout", FACTS[:4]))
    config = {
        "router": local["router"],
        "workers": [{"name": w["name"], "address": addresses[w["name"]], "served_model_name": w["served_model_name"],
                     "quantization": w["quantization"]} for w in local["workers"]],
        "profiles": {"file": "profiles/tiny.json",
                     "measure": {"eval": "profile.jsonl", "concurrency": [1], "requests_per_level": 2,
                                 "load_output_tokens": 4, "accuracy_concurrency": 2}},
        "comparison": {"heldout": "heldout.jsonl", "concurrency": 2},
        "log_dir": str(tmp_path / "logs"),
    }
    config_path = tmp_path / "mesh.yaml"
    config_path.write_text(yaml.safe_dump(config))

    first = _run_up(config_path, tmp_path / "first.json")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert "profiles: measuring 2 pair(s)" in first.stdout
    for heading in ("held-out graded items: always", "accuracy vs references", "cost per 1M tokens",
                    "routed traffic per pair"):
        assert heading in first.stdout

    document_path = tmp_path / "profiles" / "tiny.json"
    document = parse_profile_document(document_path.read_text())
    assert {pair.model_id for pair in document.pairs} == {w["served_model_name"] for w in local["workers"]}
    for pair in document.pairs:  # graded by the profiler on the six items, not typed in
        assert sum(graded.total for graded in pair.graded_by_tier.values()) == len(FACTS)
    assert provenance_path(document_path).is_file()
    assert document_path.with_suffix(".report.json").is_file()

    results = json.loads((tmp_path / "first.json").read_text())
    heldout = {item["id"]: item for item in map(json.loads, (tmp_path / "heldout.jsonl").read_text().splitlines())}
    for arm in ("all_best", "routed"):
        answers = results["answers"][arm]
        assert results["arms"][arm]["n"] == len(answers) == 4 and not any(answer["error"] for answer in answers)
        for answer in answers:  # each verdict is the regex scorer's on the text that came back
            assert answer["correct"] == bool(re.search(heldout[answer["item_id"]]["pattern"], answer["output"]))
    best = {answer["pair"] for answer in results["answers"]["all_best"]}
    assert len(best) == 1
    assert 0.0 <= results["required_accuracy"] <= 1.0
    routed_cost = results["arms"]["routed"]["cost_usd"]
    assert routed_cost == pytest.approx(sum(a["cost_usd"] for a in results["answers"]["routed"]))

    second = _run_up(config_path, tmp_path / "second.json")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-4000:]
    assert "profiles: reusing" in second.stdout
