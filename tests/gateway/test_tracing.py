"""One trace from the HTTP client through the gateway to the router: the gateway continues the caller's W3C
`traceparent`, and the router's server span is a child of the gateway's gRPC client span (both exported over
OTLP/gRPC to a receiver in this process)."""

from __future__ import annotations

import asyncio
import os

import httpx

from tests.fixtures.gateway import ROUTE_KEY, running_gateway_mesh
from tests.fixtures.observability import OtlpTraceReceiver
from tests.fixtures.waiting import await_until
from tests.reliability.meshes import synthetic_pair

TRACE_ID = os.urandom(16).hex()
CALLER_SPAN_ID = os.urandom(8).hex()


async def test_the_gateway_joins_the_callers_trace_and_the_router_joins_the_gateways(tmp_path) -> None:
    receiver = OtlpTraceReceiver()
    receiver.start()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_BSP_SCHEDULE_DELAY": "100"}
    try:
        async for running in running_gateway_mesh(tmp_path, synthetic_pair(), router_env=otel, gateway_env=otel):
            async with httpx.AsyncClient(base_url=running.url, timeout=30) as client:
                response = await client.post("/v1/chat/completions", json={
                    "model": "auto", "messages": [{"role": "user", "content": "Trace me."}], "stream": True},
                    headers={"authorization": f"Bearer {ROUTE_KEY}",
                             "traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"})
                assert response.status_code == 200 and "[DONE]" in response.text

            def ours() -> list:
                spans = [span for span in receiver.spans() if span.trace_id == TRACE_ID]
                names = {(span.service, span.span.name) for span in spans}
                wanted = {("quantmesh-gateway", "POST /v1/chat/completions"),
                          ("quantmesh-router", "/quantmesh.router.v1.RouterService/Generate")}
                return spans if wanted <= names else []
            spans = await await_until(ours, timeout_s=15.0, message="no gateway and router spans in the trace")
    finally:
        await asyncio.to_thread(receiver.stop)
    by_id = {span.span_id: span for span in spans}
    gateway_server = next(s for s in spans if s.service == "quantmesh-gateway" and s.parent_span_id == CALLER_SPAN_ID)
    assert gateway_server.span.name == "POST /v1/chat/completions"
    router_server = next(s for s in spans if s.service == "quantmesh-router"
                         and s.span.name == "/quantmesh.router.v1.RouterService/Generate")
    client_span = by_id[router_server.parent_span_id]
    assert client_span.service == "quantmesh-gateway"
    assert client_span.parent_span_id == gateway_server.span_id
    # No span per streamed chunk: the ASGI send and receive spans are off.
    assert not [s for s in spans if s.span.name.endswith((" http send", " http receive"))]
