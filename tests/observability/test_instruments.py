"""The pure parts of the instrumentation, without servers: abort reasons, circuit gauge values, exporter selection
from the OTEL_* environment, and the router's span attributes."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from prometheus_client import REGISTRY

from core.classification import Classification
from core.vocabulary import ComplexityTier, ProfileSource, TaskIntent
from services.common import tracing
from services.router.circuit_breaker import CircuitState
from services.router.policy import PolicyConfig, RoutingRequest, WorkerView, decide
from services.router.profile_store import LoadedProfiles
from services.router.prometheus_metrics import RouterMetrics
from services.router.span_attributes import decision_attributes
from services.worker.prometheus_metrics import AbortReason, abort_reason
from tests.router.helpers import document, now, pair_dict


@pytest.mark.parametrize(("interrupted_by", "time_remaining_s", "reason"), [
    (asyncio.CancelledError(), 3.0, AbortReason.CANCELLED),
    (GeneratorExit(), None, AbortReason.CANCELLED),
    (asyncio.CancelledError(), -0.01, AbortReason.DEADLINE),
    (GeneratorExit(), 0.0, AbortReason.DEADLINE),
    (RuntimeError("engine died"), 3.0, AbortReason.ERROR),
    (None, 3.0, AbortReason.ERROR),  # the stream ended before its last delta
])
def test_abort_reason(interrupted_by, time_remaining_s, reason) -> None:
    assert abort_reason(interrupted_by, time_remaining_s) is reason


def _sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_circuit_gauge_follows_the_breaker_states_and_forgets_removed_pairs() -> None:
    metrics = RouterMetrics()
    doc = document(pair_dict("gauge-a", "127.0.0.1:1"), pair_dict("gauge-b", "127.0.0.1:2", quantization="fp8"),
                   version=12)
    metrics.profiles_loaded(LoadedProfiles(doc, ProfileSource.STATIC_FILE, now()))
    assert _sample("quantmesh_router_profile_version") == 12
    states = {("gauge-a", doc.pairs[0].quantization): WorkerView(healthy=True, circuit=CircuitState.OPEN),
              ("gauge-b", doc.pairs[1].quantization): WorkerView(healthy=True, circuit=CircuitState.HALF_OPEN)}
    metrics.refresh_circuits(states)
    assert _sample("quantmesh_router_circuit_state", model="gauge-a", quantization="none") == 2
    assert _sample("quantmesh_router_circuit_state", model="gauge-b", quantization="fp8") == 1
    metrics.profiles_loaded(LoadedProfiles(document(pair_dict("gauge-a", "127.0.0.1:1"), version=13),
                                           ProfileSource.STATIC_FILE, now()))
    assert _sample("quantmesh_router_circuit_state", model="gauge-b", quantization="fp8") is None
    assert _sample("quantmesh_router_profile_version") == 13


def test_no_exporter_unless_the_environment_names_one(monkeypatch) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing._exporter_names() == []
    assert tracing.configure_tracing("quantmesh-test") is False
    assert tracing.server_interceptors() == [] and tracing.client_interceptors() == []
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    assert tracing._exporter_names() == ["otlp"]
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert tracing._exporter_names() == []
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(ValueError, match="zipkin"):
        tracing.configure_tracing("quantmesh-test")


def test_health_and_load_streams_are_filtered_out_of_tracing() -> None:
    def details(method: str) -> grpc.HandlerCallDetails:
        class Details(grpc.HandlerCallDetails):
            pass

        call = Details()
        call.method = method
        return call

    assert not tracing.TRACED_RPCS(details("/grpc.health.v1.Health/Check"))
    assert not tracing.TRACED_RPCS(details("/quantmesh.worker.v1.InferenceWorkerService/WatchLoad"))
    assert tracing.TRACED_RPCS(details("/quantmesh.worker.v1.InferenceWorkerService/Generate"))
    assert tracing.TRACED_RPCS(details("/quantmesh.classifier.v1.ClassifierService/Classify"))


def test_decision_attributes_name_the_choice_and_every_rejection() -> None:
    doc = document(pair_dict("attr-small", "127.0.0.1:1", accuracy=(0.5, 0.5, 0.5)),
                   pair_dict("attr-large", "127.0.0.1:2", accuracy=(0.95, 0.95, 0.95)), version=3)
    workers = {pair.key: WorkerView(healthy=True) for pair in doc.pairs}
    query = Classification(tier=ComplexityTier.HARD, intent=TaskIntent.UNSPECIFIED, numeric_token_share=0.0, estimated_input_tokens=10)
    decision = decide(RoutingRequest(max_output_tokens=4, budget_ms=5000, required_accuracy=0.9), query, doc,
                      workers, PolicyConfig())
    attributes = decision_attributes(decision, query, "interactive", "req-1", classifier_degraded=False)
    assert attributes["quantmesh.route.outcome"] == "routed"
    assert attributes["quantmesh.route.model"] == "attr-large"
    assert attributes["quantmesh.route.utility"] == decision.chosen.utility
    assert attributes["quantmesh.route.rejections.count"] == 1
    assert attributes["quantmesh.route.rejections"] == ["attr-small/none:accuracy"]
    assert attributes["quantmesh.route.tier"] == "hard"
    assert not any("prompt" in key for key in attributes)
