"""One trace per request across router, classifier and worker, exported over OTLP/gRPC by the three child processes
to a receiver in the test process; the log lines of the request carry its request_id and trace_id."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.fixtures.observability import ObservedMesh, SpanRecord, generate, pair_of, wait_for

pytestmark = pytest.mark.vllm

SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
ROUTER_GENERATE = "/quantmesh.router.v1.RouterService/Generate"
CLASSIFY = "/quantmesh.classifier.v1.ClassifierService/Classify"
WORKER_GENERATE = "/quantmesh.worker.v1.InferenceWorkerService/Generate"
SECRET_PROMPT = "Summarise the confidential memo about project Bluefin-7731 in one line."


def _trace_of(mesh: ObservedMesh, trace_id: str, expected_spans: int) -> list[SpanRecord]:
    return wait_for(lambda: len(spans := [s for s in mesh.receiver.spans() if s.trace_id == trace_id])
                    >= expected_spans and spans, timeout_s=10.0)


def _one(spans: list[SpanRecord], service: str, name: str, kind: int) -> SpanRecord:
    found = [s for s in spans if s.service == service and s.span.name == name and s.span.kind == kind]
    assert len(found) == 1, [(s.service, s.span.name, s.span.kind) for s in spans]
    return found[0]


def test_one_trace_spans_router_classifier_and_worker(observed_mesh: ObservedMesh) -> None:
    """The caller's trace context is continued: caller -> router server span -> (client Classify -> classifier server
    span) and (client Generate -> worker server span), each child naming its parent."""
    trace_id, caller_span_id = secrets.token_hex(16), secrets.token_hex(8)
    request_id = "trace-test-" + secrets.token_hex(4)
    result = generate(observed_mesh.router.address, SECRET_PROMPT, max_output_tokens=5, request_id=request_id,
                      metadata=(("traceparent", f"00-{trace_id}-{caller_span_id}-01"),))
    spans = _trace_of(observed_mesh, trace_id, expected_spans=5)

    router = _one(spans, "quantmesh-router", ROUTER_GENERATE, SERVER)
    classify_call = _one(spans, "quantmesh-router", CLASSIFY, CLIENT)
    classify = _one(spans, "quantmesh-classifier", CLASSIFY, SERVER)
    worker_call = _one(spans, "quantmesh-router", WORKER_GENERATE, CLIENT)
    worker = _one(spans, "quantmesh-worker", WORKER_GENERATE, SERVER)
    assert router.parent_span_id == caller_span_id
    assert classify_call.parent_span_id == router.span_id
    assert classify.parent_span_id == classify_call.span_id
    assert worker_call.parent_span_id == router.span_id
    assert worker.parent_span_id == worker_call.span_id
    assert len(spans) == 5  # nothing else joined the request's trace

    # The router's span carries the decision and the usage; the worker's the usage it measured.
    decision = router.attributes()
    served = pair_of(result.summary.served_by)
    assert decision["quantmesh.request_id"] == request_id
    assert decision["quantmesh.route.outcome"] == "routed"
    assert (decision["quantmesh.route.model"], decision["quantmesh.route.quantization"]) == (
        pair_of(result.decision.chosen).model, pair_of(result.decision.chosen).quantization)
    chosen = next(c for c in result.decision.candidates if c.pair == result.decision.chosen)
    assert decision["quantmesh.route.utility"] == pytest.approx(chosen.utility)
    rejections = [r for c in result.decision.candidates for r in c.rejections]
    assert decision["quantmesh.route.rejections.count"] == len(rejections)
    assert len(decision.get("quantmesh.route.rejections", [])) == len(rejections)
    assert decision["quantmesh.served_by.model"] == served.model
    assert decision["quantmesh.usage.completion_tokens"] == result.summary.usage.completion_tokens == 5
    assert decision["quantmesh.usage.prompt_tokens"] == result.summary.usage.prompt_tokens
    assert worker.attributes()["quantmesh.usage.completion_tokens"] == 5
    assert worker.attributes()["quantmesh.request_id"] == request_id
    assert classify.attributes()["quantmesh.classification.tier"] == "COMPLEXITY_TIER_" + \
        decision["quantmesh.route.tier"].upper()

    # The prompt is in no span (record_prompt_text is off) and in no log line.
    for span in spans:
        assert not any("Bluefin" in str(value) for value in span.attributes().values()), span.span.name
    for log_file in observed_mesh.log_dir.glob("*.log"):
        assert "Bluefin" not in log_file.read_text(errors="replace"), log_file.name

    # The router's log lines of this request carry its request_id and trace_id.
    lines = [json.loads(line) for line in (observed_mesh.log_dir / "router.log").read_text().splitlines()
             if line.startswith("{") and request_id in line]
    decision_lines = [line for line in lines if line.get("event") == "route_decision"]
    assert len(decision_lines) == 1
    assert decision_lines[0]["trace_id"] == trace_id


def test_a_request_without_trace_context_starts_its_own_trace(observed_mesh: ObservedMesh) -> None:
    request_id = "root-" + secrets.token_hex(4)
    generate(observed_mesh.router.address, "What is 2 + 2?", max_output_tokens=3, request_id=request_id)

    def router_span() -> SpanRecord | None:
        return next((s for s in observed_mesh.receiver.spans() if s.service == "quantmesh-router"
                     and s.attributes().get("quantmesh.request_id") == request_id), None)

    root = wait_for(router_span)
    assert root.parent_span_id == ""
    spans = _trace_of(observed_mesh, root.trace_id, expected_spans=5)
    assert {s.service for s in spans} == {"quantmesh-router", "quantmesh-classifier", "quantmesh-worker"}


def test_health_checks_and_load_streams_are_not_traced(observed_mesh: ObservedMesh) -> None:
    """The fixtures polled every server's health and the router watches each worker's load: none of it is a span."""
    generate(observed_mesh.router.address, "Hello there", max_output_tokens=2)
    wait_for(lambda: observed_mesh.receiver.spans())
    names = {s.span.name for s in observed_mesh.receiver.spans()}
    assert not any(name.startswith("/grpc.health.v1.Health/") for name in names), names
    assert not any(name.endswith("/WatchLoad") for name in names), names
