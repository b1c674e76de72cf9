"""The packaged linters and validators pass on everything in deploy/: hadolint, checkov, docker compose's
compose-spec check, promtool (config, rules and the alert unit tests), the Grafana dashboard model, and the
container health check script against a real gRPC server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.server import build_server
from services.common.settings import ServerSettings
from tests.fixtures.deploy import COMPOSE_FILE, DEPLOY, OVERLAYS, run, tool

DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "quantmesh-dashboard.json"
HEALTH_CHECK = DEPLOY / "docker" / "grpc_health_check.py"


def test_there_are_three_images():
    assert [p.name for p in DOCKERFILES] == ["mesh.Dockerfile", "worker-cpu.Dockerfile", "worker.Dockerfile"]
    for dockerfile in DOCKERFILES:
        # BuildKit's per-Dockerfile ignore file: the context is the repository root.
        assert dockerfile.with_name(dockerfile.name + ".dockerignore").is_file(), dockerfile


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_passes(dockerfile):
    result = run([tool("hadolint"), "--no-color", str(dockerfile)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_install(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:3.11.11-slim-bookworm\nRUN pip install requests\nUSER 10001\n")
    result = run([tool("hadolint"), "--no-color", str(bad)])
    assert result.returncode != 0 and "DL3013" in result.stdout


def _checkov(target_dir: Path, framework: str) -> dict:
    # BC_SKIP_MAPPING / --skip-download: no call to the vendor's API (no network here, nor needed).
    result = run([tool("checkov"), "-d", str(target_dir), "--framework", framework, "--compact",
                  "--skip-download", "-o", "json"], env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    assert result.stdout.strip(), result.stderr
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert len(reports) == 1, reports
    return reports[0]


def test_checkov_finds_nothing_unexplained_in_the_rendered_manifests(rendered_overlays, tmp_path):
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(rendered_overlays[overlay].text)
    report = _checkov(tmp_path, "kubernetes")
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 500, report["summary"]
    failed = [(f["check_id"], f["check_name"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert failed == [], failed
    # Every skip carries its reason in the manifest (checkov.io/skipN: ID=reason).
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, (skipped["check_id"], skipped["resource"], reason)


def test_checkov_passes_the_dockerfiles():
    report = _checkov(DEPLOY / "docker", "dockerfile")
    assert report["summary"]["resource_count"] == len(DOCKERFILES)
    failed = [(f["check_id"], f["check_name"], f["file_path"]) for f in report["results"]["failed_checks"]]
    assert failed == [] and report["results"]["skipped_checks"] == [], failed


def test_compose_file_passes_the_compose_spec(tmp_path):
    ok = run([tool("docker-compose"), "-f", str(COMPOSE_FILE), "config", "--quiet"])
    assert ok.returncode == 0, ok.stderr
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("\n  classifier:\n", "\n  classifier:\n    stop_grace_periods: 9s\n", 1))
    result = run([tool("docker-compose"), "-f", str(broken), "--project-directory", str(COMPOSE_FILE.parent),
                  "config", "--quiet"])
    assert result.returncode != 0 and "stop_grace_periods" in result.stderr


def test_compose_gives_each_worker_one_gpu_of_its_own(compose_config):
    workers = {name: svc for name, svc in compose_config["services"].items() if name.startswith("worker-")}
    assert len(workers) >= 2
    device_ids = []
    for name, service in workers.items():
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1 and devices[0]["capabilities"] == ["gpu"], name
        assert len(devices[0]["device_ids"]) == 1, name
        device_ids += devices[0]["device_ids"]
    assert len(set(device_ids)) == len(device_ids), f"two workers share a GPU: {device_ids}"
    for part in ("redis", "classifier", "router", "prometheus", "grafana", "otel-collector"):
        assert part in compose_config["services"], part


def test_promtool_accepts_the_config_and_rules():
    config = run([tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert config.returncode == 0, config.stdout + config.stderr
    rules = run([tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_alerts_fire_on_the_seed_conditions_and_only_then():
    """deploy/prometheus/alerts_test.yml: each alert on synthetic series above and below its threshold."""
    result = run([tool("promtool"), "test", "rules", str(PROMETHEUS / "alerts_test.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    tests = (PROMETHEUS / "alerts_test.yml").read_text()
    for alert in ("QuantmeshRouteConcentration", "QuantmeshP99OverBudget", "QuantmeshKVCacheSaturated",
                  "QuantmeshDailySpendAnomaly"):
        assert tests.count(f"alertname: {alert}") >= 2, f"{alert}: needs a firing and a quiet case"


def test_compose_prometheus_targets_match_the_compose_services(compose_config):
    targets = json.loads((PROMETHEUS / "targets" / "compose.json").read_text())
    hosts = {t.split(":")[0] for group in targets for t in group["targets"]}
    services = set(compose_config["services"])
    assert hosts <= services, hosts - services
    assert {s for s in services if s.startswith("worker-")} <= hosts


def _dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def test_dashboard_is_a_grafana_model_with_the_four_views():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["schemaVersion"] >= 36
    titles = " | ".join(panel["title"] for panel in dashboard["panels"])
    for view in ("Route distribution", "latency / budget", "KV-cache", "Cost per request"):
        assert view in titles, titles
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
    provisioned = (DEPLOY / "compose" / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    assert "uid: prometheus" in provisioned


def test_dashboard_queries_are_valid_promql(tmp_path):
    """promtool parses each panel query (as a recording rule) with Grafana's $__rate_interval set to 5m."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_query_{i}", "expr": expr.replace("$__rate_interval", "5m")}
        for i, expr in enumerate(_dashboard_exprs())]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(json.dumps(rules))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


# --- the container health check (deploy/docker/grpc_health_check.py) against a real server ---


def _health_check(address: str, service: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HEALTH_CHECK), "--address", address, "--service", service,
                           "--timeout-s", "2"], check=False, capture_output=True, text=True, timeout=30)


async def test_health_check_script_follows_the_grpc_health_status():
    service = "quantmesh.router.v1.RouterService"
    server = await build_server(ServerSettings(host="127.0.0.1", port=0), [service], lambda _: None)
    await server.start()
    address = f"127.0.0.1:{server.port}"
    try:
        not_ready = await asyncio.to_thread(_health_check, address, service)
        assert not_ready.returncode == 1 and "NOT_SERVING" in not_ready.stderr
        await server.set_serving(True)
        ready = await asyncio.to_thread(_health_check, address, service)
        assert ready.returncode == 0 and "SERVING" in ready.stdout
        unknown = await asyncio.to_thread(_health_check, address, "quantmesh.nope.v1.NopeService")
        assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    finally:
        await server.stop(None)
    gone = await asyncio.to_thread(_health_check, address, service)
    assert gone.returncode == 1 and "UNAVAILABLE" in gone.stderr


def test_dockerfile_healthchecks_use_the_script():
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        assert re.search(r'^HEALTHCHECK .*CMD \["quantmesh-grpc-health-check"\]$', text, re.MULTILINE), dockerfile
        assert "deploy/docker/grpc_health_check.py /usr/local/bin/quantmesh-grpc-health-check" in text
