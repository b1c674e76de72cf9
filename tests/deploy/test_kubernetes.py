"""The kustomize overlays render, pass the Kubernetes and KEDA schemas, and hold the deployment rules of issue 9."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from services.router.batch.store import GROUP, queue_key
from tests.fixtures.deploy import OVERLAYS

KUBERNETES_VERSION = "1.32"  # oldest minor the manifests target (CronJob timeZone, grpc probes: GA before it)
KEDA_SCHEMA = json.loads((Path(__file__).parent / "schemas" / "keda-scaledobject-v1alpha1.schema.json").read_text())
KEDA_AUTH_SCHEMA = json.loads((Path(__file__).parent / "schemas" /
                               "keda-triggerauthentication-v1alpha1.schema.json").read_text())
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}


def _workloads(rendered) -> list[tuple[str, dict]]:
    """(name, pod spec) of every Deployment and CronJob."""
    specs = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in rendered.of_kind("Deployment")]
    specs += [(d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"])
              for d in rendered.of_kind("CronJob")]
    return specs


def _workers(rendered) -> list[dict]:
    return [d for d in rendered.of_kind("Deployment")
            if d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_resources_pass_the_kubernetes_schemas(rendered_overlays, overlay):
    rendered = rendered_overlays[overlay]
    checked = 0
    for doc in rendered.docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue  # KEDA's schema, below
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    assert checked >= 20, f"{overlay}: only {checked} resources validated"


def test_kubernetes_schema_check_rejects_a_misspelt_field(rendered_overlays):
    deployment = copy.deepcopy(rendered_overlays["gpu"].named("Deployment", "quantmesh-router"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["servcie"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_gpu_worker_pool_has_one_scaled_object_that_passes_keda_schema(rendered_overlays):
    rendered = rendered_overlays["gpu"]
    objects = rendered.of_kind("ScaledObject")
    for scaled in objects:
        jsonschema.validate(scaled, KEDA_SCHEMA)
    targets = sorted(s["spec"]["scaleTargetRef"]["name"] for s in objects)
    assert targets == sorted(d["metadata"]["name"] for d in _workers(rendered))
    for scaled in objects:
        worker = rendered.named("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        env = _env(worker["spec"]["template"]["spec"]["containers"][0])
        query = scaled["spec"]["triggers"][0]["metadata"]["query"]
        # The query must select this pool's own queue: the pair's model and quantization labels.
        assert f'model="{env["QUANTMESH_WORKER_SERVED_MODEL_NAME"]}"' in query, query
        assert f'quantization="{env["QUANTMESH_WORKER_QUANTIZATION"]}"' in query, query
        assert "quantmesh_worker_waiting_requests" in query
        assert scaled["spec"]["minReplicaCount"] >= 1, "a GPU pool scaled to zero answers nothing for minutes"


def test_worker_pools_also_scale_on_the_batch_stream_with_the_store_s_names(rendered_overlays):
    rendered = rendered_overlays["gpu"]
    auths = {auth["metadata"]["name"]: auth for auth in rendered.of_kind("TriggerAuthentication")}
    for auth in auths.values():
        jsonschema.validate(auth, KEDA_AUTH_SCHEMA)
    for scaled in rendered.of_kind("ScaledObject"):
        (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "redis-streams"]
        # The names the consumers use (services.router.batch.store), and 10 requests per pod (the seed's target).
        assert trigger["metadata"]["stream"] == queue_key()
        assert trigger["metadata"]["consumerGroup"] == GROUP
        assert trigger["metadata"]["streamLength"] == "10"
        secret = auths[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"][0]
        assert (secret["parameter"], secret["name"], secret["key"]) == ("password", "quantmesh-redis", "password")


@pytest.mark.parametrize(
    "breakage",
    [
        lambda s: s["spec"].pop("triggers"),
        lambda s: s["spec"].pop("scaleTargetRef"),
        lambda s: s["spec"]["triggers"][0].pop("metadata"),
        lambda s: s["spec"]["triggers"][0].pop("type"),
        lambda s: s["spec"]["triggers"][0]["metadata"].pop("query"),
        lambda s: s["spec"]["triggers"][0]["metadata"].update(threshold=4),
        lambda s: s["spec"].update(maxReplicas=3),
        lambda s: s["spec"]["triggers"][1]["metadata"].pop("consumerGroup"),
        lambda s: s["spec"]["triggers"][1]["metadata"].update(pendingEntriesCount="10"),
    ],
    ids=["no-triggers", "no-scaleTargetRef", "no-metadata", "no-type", "prometheus-no-query",
         "non-string-metadata", "unknown-field", "streams-no-group", "streams-two-targets"],
)
def test_keda_schema_rejects_broken_scaled_objects(rendered_overlays, breakage):
    scaled = copy.deepcopy(rendered_overlays["gpu"].of_kind("ScaledObject")[0])
    breakage(scaled)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(scaled, KEDA_SCHEMA)


def test_gpu_workers_request_exactly_one_gpu_and_one_deployment_per_pair(rendered_overlays):
    workers = _workers(rendered_overlays["gpu"])
    pairs = set()
    for worker in workers:
        container = worker["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        env = _env(container)
        pairs.add((env["QUANTMESH_WORKER_SERVED_MODEL_NAME"], env["QUANTMESH_WORKER_QUANTIZATION"]))
    assert len(pairs) == len(workers) >= 2, "one Deployment per model-quantization pair"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_hardened_and_bounded(rendered_overlays, overlay):
    for name, pod in _workloads(rendered_overlays[overlay]):
        assert pod.get("automountServiceAccountToken") is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in pod["containers"] + pod.get("initContainers", []):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget_and_health_probes(rendered_overlays, overlay):
    rendered = rendered_overlays[overlay]
    budgets = [b["spec"]["selector"]["matchLabels"] for b in rendered.of_kind("PodDisruptionBudget")]
    for deployment in rendered.of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        name = deployment["metadata"]["name"]
        component = labels["app.kubernetes.io/component"]
        if component != "redis":  # one replica on a ReadWriteOnce volume: a budget would block every drain
            matching = [b for b in budgets if b.items() <= labels.items()]
            assert len(matching) == 1, f"{name}: {len(matching)} PodDisruptionBudgets select it"
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                spec = deployment["spec"]["template"]["spec"]["containers"][0][probe]
                if component == "gateway":  # HTTP: /readyz asks the router's gRPC health, /healthz the process
                    assert spec["httpGet"]["path"] == ("/healthz" if probe == "livenessProbe" else "/readyz"), name
                else:
                    assert "grpc" in spec, (name, probe)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_embedded(rendered_overlays, overlay):
    rendered = rendered_overlays[overlay]
    assert rendered.of_kind("Secret") == []
    referenced = set()
    for _, pod in _workloads(rendered):
        for container in pod["containers"]:
            for env in container.get("env", []):
                if "secretKeyRef" in env.get("valueFrom", {}):
                    referenced.add(env["valueFrom"]["secretKeyRef"]["name"])
                else:
                    assert "password" not in env["name"].lower() or "valueFrom" in env, env
        referenced |= {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    assert referenced == {"quantmesh-redis", "quantmesh-hf-token"}


def _admitted_sources(rendered, pod_labels: dict, port_name: str) -> list[dict]:
    """The `from` peers of every NetworkPolicy rule that admits traffic to `pod_labels` on `port_name`."""
    sources = []
    for policy in rendered.of_kind("NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if not selector.items() <= pod_labels.items():
            continue
        for rule in policy["spec"].get("ingress", []):
            if any(port["port"] == port_name for port in rule.get("ports", [])):
                sources.extend(rule.get("from", [{"anywhere": True}]))
    return sources


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_let_only_the_router_reach_workers_and_classifier(rendered_overlays, overlay):
    rendered = rendered_overlays[overlay]
    default_deny = rendered.named("NetworkPolicy", "quantmesh-default-deny-ingress")
    assert default_deny["spec"]["podSelector"] == {} and "ingress" not in default_deny["spec"]
    for worker in _workers(rendered):
        labels = worker["spec"]["template"]["metadata"]["labels"]
        sources = _admitted_sources(rendered, labels, "grpc")
        components = sorted(s["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for s in sources)
        # The profiler measures workers over gRPC (issue 8); nobody else may call them.
        assert components == ["profiler", "router"], (worker["metadata"]["name"], sources)
    classifier = rendered.named("Deployment", "quantmesh-classifier")["spec"]["template"]["metadata"]["labels"]
    sources = _admitted_sources(rendered, classifier, "grpc")
    assert [s["podSelector"]["matchLabels"] for s in sources] == [{"app.kubernetes.io/component": "router"}]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_reprofiling_cronjob_measures_every_worker_service(rendered_overlays, overlay):
    rendered = rendered_overlays[overlay]
    args = rendered.named("CronJob", "quantmesh-reprofile")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"][0]["args"]
    workers = sorted(a.removeprefix("--worker=") for a in args if a.startswith("--worker="))
    # The pool Services (one pod per connection), not the headless ones the router resolves to every pod.
    services = sorted(f"{s['metadata']['name']}:{s['spec']['ports'][0]['port']}" for s in rendered.of_kind("Service")
                      if s["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
                      and s["spec"].get("clusterIP") != "None")
    assert workers == services and services
