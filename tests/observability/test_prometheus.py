"""A real Prometheus (Debian package `prometheus`) on loopback, configured from deploy/prometheus/ (its scrape job,
file discovery and alert rules; only the targets and intervals rewritten for the test), scrapes the running mesh
and answers for quantmesh series over its HTTP API. `promtool check config|rules` on the shipped files is
tests/deploy/test_tools.py's."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fixtures.observability import SLOW, VLLM, ObservedMesh, generate, wait_for
from tools.mesh.processes import free_port

pytestmark = pytest.mark.vllm

DEPLOY_PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _config(mesh: ObservedMesh, directory: Path, prometheus_port: int) -> Path:
    """deploy/prometheus/prometheus.yml with 1 s intervals, the rules by absolute path, and the targets file
    (same shape as targets/compose.json) pointing at the test's metrics ports."""
    config = yaml.safe_load((DEPLOY_PROMETHEUS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY_PROMETHEUS / name) for name in config["rule_files"]]
    targets_dir = directory / "targets"
    targets_dir.mkdir()
    (targets_dir / "test.json").write_text(json.dumps([
        {"targets": [f"127.0.0.1:{mesh.router.metrics_port}"], "labels": {"service": "router"}},
        {"targets": [f"127.0.0.1:{mesh.classifier.metrics_port}"], "labels": {"service": "classifier"}},
        {"targets": [f"127.0.0.1:{worker.metrics_port}" for worker in mesh.workers.values()],
         "labels": {"service": "worker"}},
    ]))
    for job in config["scrape_configs"]:
        if job["job_name"] == "quantmesh":
            job["file_sd_configs"] = [{"files": [str(targets_dir / "*.json")], "refresh_interval": "1s"}]
        else:  # Prometheus scraping itself
            job["static_configs"] = [{"targets": [f"127.0.0.1:{prometheus_port}"]}]
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _api(port: int, path: str, **params: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=5.0) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


@pytest.fixture(scope="module")
def prometheus(observed_mesh: ObservedMesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A Prometheus server scraping the mesh; yields its port."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus (Debian package)")
    directory = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = _config(observed_mesh, directory, port)
    check = subprocess.run([shutil.which("promtool") or "promtool", "check", "config", str(config)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(directory / "prometheus.log", "wb")  # noqa: SIM115 - closed after the process
    process = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                                f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1.0) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_for(ready, timeout_s=30.0, interval_s=0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_prometheus_scrapes_every_service_of_the_mesh(observed_mesh: ObservedMesh, prometheus: int) -> None:
    served = generate(observed_mesh.router.address, "Name one primary colour.", max_output_tokens=3)
    targets = wait_for(lambda: (active := _api(prometheus, "targets")["activeTargets"]) and all(
        t["health"] == "up" for t in active) and len(active) == 6 and active, timeout_s=20.0)
    assert {t["labels"]["service"] for t in targets if t["labels"]["job"] == "quantmesh"} == {
        "router", "classifier", "worker"}

    def series(query: str) -> list[dict]:
        return _api(prometheus, "query", query=query)["result"]

    # The router's decision counter, with the labels of the pair that served, scraped after the request.
    served_pair = served.summary.served_by.model_id
    decided = wait_for(lambda: series(
        f'sum by (model, service) (quantmesh_router_decisions_total{{model="{served_pair}"}}) > 0'), timeout_s=20.0)
    assert decided[0]["metric"] == {"model": served_pair, "service": "router"}
    # KEDA's query shape on the workers' waiting requests, and the classifier's histogram.
    waiting = series(f'sum(quantmesh_worker_waiting_requests{{model="{VLLM.model}",quantization="none"}})')
    assert float(waiting[0]["value"][1]) == 0
    assert series(f'quantmesh_worker_kv_cache_usage_ratio{{model="{SLOW.model}"}}')
    assert float(series("sum(quantmesh_classifier_latency_seconds_count)")[0]["value"][1]) >= 1

    # The alert rules of deploy/prometheus/alerts.yml are loaded and evaluate without error.
    groups = wait_for(lambda: (g := _api(prometheus, "rules")["groups"]) and all(
        rule.get("lastEvaluation", "").startswith("20") for group in g for rule in group["rules"]
        if group["name"] == "quantmesh.alerts") and g, timeout_s=20.0)
    alerts = {rule["name"]: rule for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    assert set(alerts) == {"QuantmeshRouteConcentration", "QuantmeshP99OverBudget", "QuantmeshKVCacheSaturated",
                           "QuantmeshDailySpendAnomaly", "QuantmeshBatchQueueWaitOverSLA"}
    assert all(rule["health"] == "ok" for rule in alerts.values()), alerts
