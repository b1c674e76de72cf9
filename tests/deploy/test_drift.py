"""Values in the manifests and the compose file match the code, so they cannot drift: env var names are settings
fields, their values pass the settings' own validation, ports agree between settings, container ports, probes,
Services and health checks, probe service names are the services the protos define, commands run modules that
exist, every metric name the alerts, dashboard and autoscalers use is in the documented list, and the
documented list is exactly what the code registers."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from quantmesh.classifier.v1 import classifier_pb2
from quantmesh.router.v1 import router_pb2
from quantmesh.worker.v1 import worker_pb2
from services.common.settings import ServerSettings
from tests.fixtures.deploy import DEPLOY, OVERLAYS, REPO
from tools.profiler.eval_set import load_eval_set

HEALTH_SERVICES = {
    "router": router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name,
    "classifier": classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name,
    "worker": worker_pb2.DESCRIPTOR.services_by_name["InferenceWorkerService"].full_name,
    "batch-consumer": "",  # health only: the whole server, SERVING once its consumer group exists
}
# The package of each component (services/<package>); the others are named as their package.
PACKAGES = {"batch-consumer": "router.batch"}


def package(component: str) -> str:
    return PACKAGES.get(component, component)
# Stand-ins for values that come from Secrets, so the rest of the environment can be validated.
SECRET_STAND_INS = {"QUANTMESH_ROUTER_REDIS_URL": "redis://:secret@quantmesh-redis:6379/0",
                    "QUANTMESH_BATCH_REDIS_URL": "redis://:secret@quantmesh-redis:6379/0"}


def settings_class(component: str) -> type[ServerSettings]:
    module = importlib.import_module(f"services.{package(component)}.settings")
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, ServerSettings) and c is not ServerSettings and c.__module__ == module.__name__]
    assert len(classes) == 1, f"services/{component}/settings.py: expected one ServerSettings subclass: {classes}"
    return classes[0]


def env_prefix(component: str) -> str:
    return settings_class(component).model_config["env_prefix"]


@dataclass
class Container:
    """One quantmesh server container, from a manifest or the compose file."""

    where: str
    component: str
    env: dict[str, str | None]  # None: the value comes from a Secret or another reference
    command: list[str]
    grpc_port: int | None = None  # the container port named grpc (Kubernetes)
    probes: list[tuple[int, str]] = field(default_factory=list)  # (port, health service) of each gRPC check

    def settings_env(self) -> dict[str, str]:
        prefix = env_prefix(self.component)
        return {k: v if v is not None else SECRET_STAND_INS[k] for k, v in self.env.items() if k.startswith(prefix)}


def _k8s_containers(rendered) -> list[Container]:
    found = []
    for deployment in rendered.of_kind("Deployment"):
        component = deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        if component not in HEALTH_SERVICES:
            continue
        spec = deployment["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in spec.get("env", [])}
        ports = {p["name"]: p["containerPort"] for p in spec["ports"]}
        probes = [(spec[p]["grpc"]["port"], spec[p]["grpc"].get("service", ""))
                  for p in ("startupProbe", "readinessProbe", "livenessProbe")]
        found.append(Container(f"{rendered.overlay}:{deployment['metadata']['name']}", component, env,
                               spec["command"] + spec.get("args", []), ports["grpc"], probes))
        # Metrics: container port and the scrape annotation agree with the env var.
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == ports["metrics"], found[-1].where
        assert env[f"{env_prefix(component)}METRICS_PORT"] == str(ports["metrics"]), found[-1].where
    return found


def _dockerfile_cmd(dockerfile: str) -> list[str]:
    """The image's default command (its last exec-form CMD), for compose services that do not override it."""
    commands = re.findall(r"^CMD (\[.*\])$", (REPO / dockerfile).read_text(), re.MULTILINE)
    return json.loads(commands[-1])


def _compose_containers(compose) -> list[Container]:
    found = []
    for name, service in compose["services"].items():
        component = "worker" if name.startswith("worker-") else name
        if component not in HEALTH_SERVICES:
            continue
        test = service["healthcheck"]["test"]
        address, health = test[test.index("--address") + 1], test[test.index("--service") + 1]
        command = service.get("command") or _dockerfile_cmd(service["build"]["dockerfile"])
        found.append(Container(f"compose:{name}", component, dict(service["environment"]), command,
                               probes=[(int(address.rsplit(":", 1)[1]), health)]))
        assert address.startswith("127.0.0.1:"), found[-1].where
    return found


@pytest.fixture(scope="module")
def containers(rendered_overlays, compose_config) -> list[Container]:
    found = [c for overlay in OVERLAYS for c in _k8s_containers(rendered_overlays[overlay])]
    found += _compose_containers(compose_config)
    assert {c.component for c in found} == set(HEALTH_SERVICES)
    return found


def test_env_var_names_are_fields_of_the_right_settings_class(containers):
    """pydantic-settings ignores unknown variables silently: a misspelt name would be lost without this test."""
    prefixes = {c: env_prefix(c) for c in HEALTH_SERVICES}
    for container in containers:
        fields = settings_class(container.component).model_fields
        for name in container.env:
            other = [c for c, p in prefixes.items() if name.startswith(p) and c != container.component]
            assert not other, f"{container.where}: {name} belongs to {other}"
            if not name.startswith(prefixes[container.component]):
                continue
            setting = name.removeprefix(prefixes[container.component]).lower()
            assert setting in fields, f"{container.where}: {name} is not a {container.component} setting"


def test_env_values_pass_the_settings_validation(containers, monkeypatch):
    for container in containers:
        env = container.settings_env()
        with monkeypatch.context() as patch:
            for name in [n for n in os.environ if n.startswith("QUANTMESH_")]:
                patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            settings = settings_class(container.component)()
        assert settings.host == "0.0.0.0", f"{container.where}: must listen on every interface in a container"
        assert settings.port != 0, f"{container.where}: a fixed port, not 0"
        if container.grpc_port is not None:
            assert settings.port == container.grpc_port, container.where
        for port, _ in container.probes:
            assert port == settings.port, f"{container.where}: probe on {port}, server on {settings.port}"


def test_health_checks_ask_for_the_services_the_protos_define(containers):
    for container in containers:
        services = {service for _, service in container.probes}
        assert services <= {"", HEALTH_SERVICES[container.component]}, (container.where, services)
        assert HEALTH_SERVICES[container.component] in services, container.where


def test_commands_run_modules_that_exist(containers):
    for container in containers:
        command = container.command
        assert command[:2] == ["python3", "-m"], container.where
        module = command[2]
        assert module == f"services.{package(container.component)}", container.where
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{container.where}: no {module}.__main__"


def test_kubernetes_services_and_the_router_agree_on_addresses(rendered_overlays):
    for overlay in OVERLAYS:
        rendered = rendered_overlays[overlay]
        ports = {}
        for deployment in rendered.of_kind("Deployment"):
            spec = deployment["spec"]["template"]["spec"]["containers"][0]
            ports[deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]] = spec["ports"]
        for service in rendered.of_kind("Service"):
            selector = service["spec"]["selector"]
            deployment = [d for d in rendered.of_kind("Deployment")
                          if d["spec"]["selector"]["matchLabels"] == selector]
            assert len(deployment) == 1, (overlay, service["metadata"]["name"])
            named = {p["name"]: p["containerPort"] for p in deployment[0]["spec"]["template"]["spec"]["containers"][0]["ports"]}
            for port in service["spec"]["ports"]:
                assert named[port["targetPort"]] == port["port"], (overlay, service["metadata"]["name"])
        router = rendered.named("Deployment", "quantmesh-router")["spec"]["template"]["spec"]["containers"][0]
        address = {e["name"]: e.get("value") for e in router["env"]}["QUANTMESH_ROUTER_CLASSIFIER_ADDRESS"]
        classifier = rendered.named("Service", "quantmesh-classifier")
        assert address == f"quantmesh-classifier:{classifier['spec']['ports'][0]['port']}"


def test_compose_router_reaches_the_classifier_and_redis(compose_config):
    env = compose_config["services"]["router"]["environment"]
    classifier = compose_config["services"]["classifier"]["environment"]
    assert env["QUANTMESH_ROUTER_CLASSIFIER_ADDRESS"] == f"classifier:{classifier['QUANTMESH_CLASSIFIER_PORT']}"
    assert env["QUANTMESH_ROUTER_REDIS_URL"].startswith("redis://redis:6379/")


def test_dockerfiles_match_the_project_version_and_ports():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    expected = {"mesh": ("50051", ""), "worker": ("50053", HEALTH_SERVICES["worker"]),
                "worker-cpu": ("50053", HEALTH_SERVICES["worker"])}
    for name, (port, service) in expected.items():
        text = (DEPLOY / "docker" / f"{name}.Dockerfile").read_text()
        assert f"ARG QUANTMESH_VERSION={version}\n" in text, name
        assert f"HEALTHCHECK_GRPC_ADDRESS=127.0.0.1:{port}" in text, name
        assert f'HEALTHCHECK_GRPC_SERVICE="{service}"' in text or f"HEALTHCHECK_GRPC_SERVICE={service}\n" in text, name
        assert re.search(rf"^EXPOSE {port} \d+$", text, re.MULTILINE), name


# --- metric names ---

_METRIC = re.compile(r"\bquantmesh_[a-z0-9_]+")
_HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")


def documented_metrics() -> dict[str, str]:
    """name -> type, from the table in deploy/README.md "Metrics"."""
    rows = re.findall(r"^\| `(quantmesh_[a-z0-9_]+)` \| (counter|gauge|histogram) \|", (DEPLOY / "README.md").read_text(),
                      re.MULTILINE)
    return dict(rows)


def used_metrics(rendered_overlays) -> dict[str, set[str]]:
    """Metric name -> where it is used (alert rules, dashboard queries, ScaledObject queries)."""
    texts = {"prometheus/alerts.yml": [r["expr"] for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
                                       for r in g["rules"]],
             "grafana dashboard": [t["expr"] for p in json.loads((DEPLOY / "grafana" / "quantmesh-dashboard.json").read_text())["panels"]
                                   for t in p["targets"]],
             "ScaledObjects": [s["spec"]["triggers"][0]["metadata"]["query"]
                               for s in rendered_overlays["gpu"].of_kind("ScaledObject")]}
    used: dict[str, set[str]] = {}
    for where, exprs in texts.items():
        for expr in exprs:
            for name in _METRIC.findall(expr):
                used.setdefault(name, set()).add(where)
    return used


def _base_name(series: str, documented: dict[str, str]) -> str:
    base = _HISTOGRAM_SERIES.sub("", series)
    return base if documented.get(base) == "histogram" else series


def test_every_metric_used_is_documented_with_its_type(rendered_overlays):
    documented = documented_metrics()
    assert len(documented) >= 20
    for series, where in used_metrics(rendered_overlays).items():
        name = _base_name(series, documented)
        assert name in documented, f"{series} (used in {sorted(where)}) is not in deploy/README.md 'Metrics'"
        if series != name:
            assert documented[name] == "histogram", series
        if name.endswith("_total"):
            assert documented[name] == "counter", name
    for name, kind in documented.items():
        assert (kind == "counter") == name.endswith("_total"), f"{name}: only counters end in _total"


def _metric_names_in_code() -> set[str]:
    """Metric names defined in services/ and core/: what the modules that use prometheus_client register in
    the default registry once imported (prometheus_client strips _total from counters: added back), plus the
    quoted quantmesh_* names in those modules (for metrics kept in a registry of their own)."""
    from prometheus_client import REGISTRY

    names = set()
    for path in sorted([*(REPO / "services").rglob("*.py"), *(REPO / "core").rglob("*.py")]):
        text = path.read_text()
        if "prometheus_client" not in text or path.name == "__main__.py":
            continue
        names |= set(re.findall(r"[\"'](quantmesh_[a-z0-9_]+)[\"']", text))
        importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
    for family in REGISTRY.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return {n for n in names if n.startswith("quantmesh_")}


def test_documented_metrics_are_the_ones_the_code_defines():
    in_code = _metric_names_in_code()
    documented = set(documented_metrics())
    missing = sorted(documented - in_code)
    assert not missing, f"documented in deploy/README.md but not defined in services/ or core/: {missing}"
    undocumented = sorted(in_code - documented)
    assert not undocumented, f"defined in the code but not in deploy/README.md 'Metrics': {undocumented}"


def test_metrics_port_is_a_setting():
    """The manifests and the compose file set QUANTMESH_<SERVICE>_METRICS_PORT (9101/9102/9103) for each."""
    missing = [c for c in HEALTH_SERVICES if "metrics_port" not in settings_class(c).model_fields]
    assert not missing, f"settings without metrics_port: {missing}"


def test_reprofiling_arguments_parse_with_the_cli(rendered_overlays):
    from clients import cli
    from tools.profiler.cli import build_parser as profiler_parser

    commands = next(a for a in cli.build_parser()._actions if a.dest == "command").choices
    assert "profile" in commands
    for overlay in OVERLAYS:
        container = rendered_overlays[overlay].named("CronJob", "quantmesh-reprofile")["spec"]["jobTemplate"]["spec"][
            "template"]["spec"]["containers"][0]
        assert container["command"][:2] == ["quantmesh", "profile"]
        # `quantmesh profile ...` hands everything after `profile` to the profiler's parser.
        args = profiler_parser().parse_args(container["command"][2:] + container["args"])
        # One price per worker, in order (a lone placeholder price for every pair is what this replaced).
        assert len(args.price_per_hour_usd) == len(args.workers) >= 2, overlay
        assert all(price > 0 for price in args.price_per_hour_usd), overlay
        assert args.publish == "quantmesh-router:50051" and str(args.output).startswith("/tmp/"), overlay
        # Each measured pool is published under its headless Service: the router reaches every replica.
        assert len(args.endpoints) == len(args.workers), overlay
        services = {svc["metadata"]["name"]: svc for svc in rendered_overlays[overlay].of_kind("Service")}
        for worker, endpoint in zip(args.workers, args.endpoints, strict=True):
            measured = services[worker.rsplit(":", 1)[0]]
            headless = services[endpoint.removeprefix("dns:///").rsplit(":", 1)[0]]
            assert headless["spec"]["clusterIP"] == "None", endpoint
            assert headless["spec"]["selector"] == measured["spec"]["selector"], (worker, endpoint)


def test_compose_profiler_command_parses_with_the_cli(compose_config):
    from tools.profiler.cli import build_parser as profiler_parser

    profiler = compose_config["services"]["profiler"]  # in the default profile: it runs on the first `up`
    assert profiler["command"][:2] == ["quantmesh", "profile"]
    args = profiler_parser().parse_args(profiler["command"][2:])  # as compose interpolated it
    workers = {name for name in compose_config["services"] if name.startswith("worker-")}
    assert {worker.split(":")[0] for worker in args.workers} == workers
    assert len(args.price_per_hour_usd) == len(args.workers) and all(p > 0 for p in args.price_per_hour_usd)
    router_port = compose_config["services"]["router"]["environment"]["QUANTMESH_ROUTER_PORT"]
    assert args.publish == f"router:{router_port}"
    # The container's root file system is read-only; /tmp is its tmpfs.
    assert str(args.output).startswith("/tmp/") and "/tmp" in profiler["tmpfs"]
    # The eval set it reads is the shipped one, mounted read-only, and valid.
    (mount,) = [v for v in profiler["volumes"] if v["target"] == str(args.eval_path.parent)]
    assert mount["read_only"] and load_eval_set(Path(mount["source"]) / args.eval_path.name)


def test_the_compose_stack_gets_its_first_profiles_without_waiting_on_itself(compose_config):
    """A router reports SERVING only once it has profiles: whatever publishes the first ones must not wait for that."""
    services = compose_config["services"]
    profiler = services["profiler"]["depends_on"]
    assert profiler["router"]["condition"] == "service_started"
    assert {name for name, dep in profiler.items() if dep["condition"] == "service_healthy"} == {
        name for name in services if name.startswith("worker-")}

    def waits_for_router_health(name: str, seen: frozenset[str] = frozenset()) -> bool:
        depends = services[name].get("depends_on", {})
        return any((dep == "router" and how["condition"] == "service_healthy")
                   or (dep not in seen and waits_for_router_health(dep, seen | {name})) for dep, how in depends.items())

    assert not waits_for_router_health("profiler")
    # What needs a routing router waits for its health, so it starts once the profiles are in.
    assert waits_for_router_health("gateway") and waits_for_router_health("batch-consumer")