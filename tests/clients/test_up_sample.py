"""The main job, end to end: `quantmesh up --config ... --run-sample` as a user runs it (smaller sample).

To share the session's two vLLM engines (start-up is minutes on this 2-core box), the config is
`deploy/mesh/local.yaml` with each worker given as an already running address (the `mesh` fixture's workers, started by
the same `tools.mesh.mesh.Mesh` code); `up` starts its own Redis, Classifier and Router, seeds the profiles through the
router, runs the sample, stops what it started (and only that), and exits 0.
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

from tests.fixtures.mesh import LOCAL_MESH_CONFIG
from tests.fixtures.worker import worker_load
from tools.mesh.mesh import MeshEndpoints
from tools.mesh.mesh_config import derived_profile_fields
from tools.mesh.processes import health_status

pytestmark = pytest.mark.vllm

PER_SOURCE = 2


def _config_with_running_workers(mesh: MeshEndpoints, path: Path) -> dict:
    config = yaml.safe_load(LOCAL_MESH_CONFIG.read_text())
    addresses = {w.name: w.address for w in mesh.workers}
    config["workers"] = [
        {"name": w["name"], "address": addresses[w["name"]], "served_model_name": w["served_model_name"],
         "quantization": w["quantization"], "profile": w["profile"]}
        for w in config["workers"]
    ]
    config["log_dir"] = str(path.parent / "logs")
    path.write_text(yaml.safe_dump(config))
    return config


def test_up_run_sample_routes_held_out_prompts_and_shuts_down(mesh: MeshEndpoints, tmp_path: Path) -> None:
    config = _config_with_running_workers(mesh, tmp_path / "mesh.yaml")
    results_path = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "clients.cli", "up", "--config", str(tmp_path / "mesh.yaml"), "--run-sample",
         "--per-source", str(PER_SOURCE), "--results-json", str(results_path)],
        env={**os.environ, "COLUMNS": "200"}, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    for heading in ("quantmesh is up", "traffic per pair", "latency vs budget", "all to", "routing saved"):
        assert heading in done.stdout
    assert re.search(r"gateway ready: chat page at http://127\.0\.0\.1:\d+/", done.stdout), done.stdout[:3000]

    report = json.loads(results_path.read_text())
    results, summary = report["results"], report["summary"]
    sources = {s for s, n in config["sample"]["counts"].items() if n}
    assert len(results) == PER_SOURCE * len(sources) == summary["requests"] == summary["succeeded"]
    assert {r["source"] for r in results} == sources

    profiles = {f"{w['served_model_name']}/{w['quantization']}": derived_profile_fields(w["profile"])
                for w in config["workers"]}
    most_accurate = max(profiles, key=lambda name: sum(profiles[name]["accuracy_by_tier"].values()))
    budget_ms = config["sample"]["requirements"]["latency_budget_ms"]
    max_tokens = config["sample"]["requirements"]["max_output_tokens"]
    for r in results:
        assert r["error_code"] == "" and r["served_by"] == r["chosen"] in profiles
        assert r["required_accuracy"] == config["sample"]["required_accuracy_by_source"][r["source"]]
        if r["outcome"] == "routed":  # a routed request met its accuracy threshold on the pair that served it
            assert r["expected_accuracy"] >= r["required_accuracy"]
        else:  # nothing qualified: the most accurate pair, flagged
            assert r["outcome"] == "fallback" and r["served_by"] == most_accurate
        assert 0 < r["ttft_ms"] <= r["e2e_latency_ms"] <= budget_ms
        assert 1 <= r["completion_tokens"] <= max_tokens and r["prompt_tokens"] > 0
        # usage-based cost: the worker's token count at the served pair's price
        total_tokens = r["prompt_tokens"] + r["completion_tokens"]
        expected_cost = total_tokens * profiles[r["served_by"]]["cost_per_1m_tokens_usd"] / 1e6
        assert r["actual_cost_usd"] == pytest.approx(expected_cost, rel=1e-6)

    assert sum(p["share"] for p in summary["pairs"]) == pytest.approx(1.0)
    assert sum(p["requests"] for p in summary["pairs"]) == len(results)
    assert summary["within_budget"] == 1.0
    assert summary["baseline_pair"] == most_accurate
    assert summary["actual_cost_usd"] == pytest.approx(sum(r["actual_cost_usd"] for r in results))
    assert summary["actual_cost_usd"] <= summary["baseline_actual_cost_usd"]  # never dearer than all-to-best

    # up stopped what it started (router, classifier) and left the shared workers running and idle
    assert health_status(report["mesh"]["router_address"]) is None
    assert health_status(report["mesh"]["classifier_address"]) is None
    for worker in mesh.workers:
        load = worker_load(worker.address)
        assert load.serving and load.running_requests == 0 and load.waiting_requests == 0
