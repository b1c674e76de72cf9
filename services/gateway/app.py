"""The gateway's HTTP API (FastAPI): OpenAI's chat completions and models onto `RouterService` over gRPC.

Endpoints:
- `POST /v1/chat/completions`: one `RouterService.Generate` call. Its deadline is the request's latency budget
  (`latency_budget_ms`, the `x-quantmesh-latency-budget-ms` header, or `default_latency_budget_ms`). The router's
  first message, the decision, is awaited before any response byte, so that a refused request gets its own status
  (`services.gateway.errors`) and the decision's headers (`x-quantmesh-pair`, `-outcome`,
  `-predicted-ttft-ms`, `-estimated-cost-usd`, `-request-id`) go out with a 200. `stream: true` then relays
  each token chunk as a server-sent event in OpenAI's chunk format, with `quantmesh.decision` on the first and
  `quantmesh.summary` on the last, a usage chunk when `stream_options.include_usage` is set, then `data: [DONE]`
  (and `: keep-alive` comments every `stream_keepalive_s` while the first token is awaited). A
  failure after the 200 is an `{"error": ...}` event (OpenAI's SDKs raise it). A client that disconnects cancels
  the gRPC call, and the router and worker abort the engine request.
- `GET /v1/models`: "auto" and each pair of the router's profiles (`RouterService.ListPairs`).
- `GET /healthz` (the process answers), `GET /readyz` (the router's gRPC health check says SERVING: it has profiles),
  `GET /metrics` (Prometheus), `GET /` (the chat page, `static/index.html`).

Credentials are not checked here: `Authorization: Bearer <key>` is passed to the router as gRPC metadata, and the
router's callers file maps the key to a caller and its permissions (`services.common.auth`), so the HTTP API and gRPC
share one list of API keys. `x-request-id` and the W3C trace context travel the same way.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.sse import format_sse_event
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_fastapi_instrumentator import Instrumentator
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import QuantmeshError, UnavailableError
from core.requests import MAX_REQUEST_ID_CHARS
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from services.common.tls import open_channel
from services.common.tracing import client_interceptors, tracing_enabled
from services.gateway import errors, prometheus_metrics, translate
from services.gateway.openai_types import (
    AUTO_MODEL,
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    ErrorBody,
    ErrorDetail,
    ModelCard,
    ModelList,
    QuantmeshExtension,
)
from services.gateway.settings import GatewaySettings

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
COMPLETIONS = "/v1/chat/completions"
ROUTER_SERVICE = "quantmesh.router.v1.RouterService"
# An SSE comment (clients ignore it) that keeps proxies from closing a stream idle in its prefill.
KEEPALIVE_EVENT = format_sse_event(comment="keep-alive")
MODELS_TIMEOUT_S = 5.0  # ListPairs reads the router's memory: anything slower is a router in trouble


class _Upstream:
    """The router channel, opened in the server's event loop (lifespan) and closed on shutdown."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.channel: grpc.aio.Channel | None = None
        self.stub: router_pb2_grpc.RouterServiceStub | None = None
        self.health_stub: health_pb2_grpc.HealthStub | None = None

    async def open(self) -> None:
        options = [("grpc.max_receive_message_length", self.settings.max_message_bytes),
                   ("grpc.keepalive_time_ms", self.settings.keepalive_time_ms),
                   ("grpc.keepalive_timeout_ms", self.settings.keepalive_timeout_ms)]
        self.channel = open_channel(self.settings.router_address, self.settings, options, client_interceptors())
        self.stub = router_pb2_grpc.RouterServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    def router(self) -> router_pb2_grpc.RouterServiceStub:
        if self.stub is None:
            raise UnavailableError("gateway: the router channel is not open yet")
        return self.stub

    def health(self) -> health_pb2_grpc.HealthStub:
        if self.health_stub is None:
            raise UnavailableError("gateway: the router channel is not open yet")
        return self.health_stub


def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway's ASGI app; the router channel opens when the server starts it (lifespan)."""
    upstream = _Upstream(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await upstream.open()
        log.info("gateway_started", router_address=settings.router_address)
        try:
            yield
        finally:
            await upstream.close()

    app = FastAPI(title="quantmesh gateway", summary="OpenAI-compatible chat completions, routed by quantmesh.",
                  version="1", lifespan=lifespan)
    _add_error_handlers(app)

    @app.post(COMPLETIONS, response_model=ChatCompletion, openapi_extra=_BODY_SCHEMA,
              responses={code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 429, 502, 503, 504)})
    async def chat_completions(request: Request):
        body = ChatCompletionRequest.model_validate_json(await _read_body(request, settings.max_body_bytes))
        request_id = _request_id(request)
        grpc_request = translate.generate_request(
            body, request.headers, request_id, default_budget_ms=settings.default_latency_budget_ms,
            default_max_tokens=settings.default_max_tokens)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        call = upstream.router().Generate(grpc_request, timeout=grpc_request.requirements.latency_budget_ms / 1000.0,
                                          metadata=_metadata(request, request_id))
        try:
            first = await call.read()
        except BaseException:
            call.cancel()
            raise
        if first is grpc.aio.EOF or not first.HasField("decision"):
            call.cancel()
            raise UnavailableError("router: the stream did not start with a decision")
        completion = _Completion(call, first.decision, body, request_id, settings.stream_keepalive_s)
        headers = translate.decision_headers(first.decision)
        if body.stream:
            # Starlette cancels the generator when the client disconnects; its `finally` cancels the router call.
            return StreamingResponse(completion.events(), headers=headers, media_type="text/event-stream")
        return await completion.collect(request, headers)

    @app.get("/v1/models", response_model=ModelList)
    async def models(request: Request) -> ModelList:
        listed = await upstream.router().ListPairs(router_pb2.ListPairsRequest(), timeout=MODELS_TIMEOUT_S,
                                                   metadata=_metadata(request, _request_id(request)))
        cards = [ModelCard(id=AUTO_MODEL, quantmesh={"routed": True, "profiles_version": listed.profiles_version})]
        cards += [ModelCard(id=translate.pair_id(info.pair), quantmesh={
            "serving": info.serving, "max_model_len": info.max_model_len, "accuracy": round(info.accuracy, 4),
            "cost_per_1m_output_tokens_usd": info.cost_per_1m_output_tokens_usd}) for info in listed.pairs]
        return ModelList(data=cards)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        # The router's standard health check: open to callers without credentials, SERVING once profiles are loaded.
        try:
            answer = await upstream.health().Check(
                health_pb2.HealthCheckRequest(service=ROUTER_SERVICE), timeout=settings.readiness_timeout_ms / 1000.0)
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        except grpc.RpcError as exc:
            status = exc.code().name
        ready = status == "SERVING"
        return JSONResponse({"status": "ready" if ready else "not ready", "router": status},
                            status_code=200 if ready else 503)

    @app.get("/", include_in_schema=False)
    async def chat_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    # Requests by handler and status, their duration (to the end of a stream) and sizes: quantmesh_gateway_http_*.
    Instrumentator(should_group_status_codes=False, excluded_handlers=["/metrics", "/healthz", "/readyz"]).instrument(
        app, metric_namespace="quantmesh", metric_subsystem="gateway").expose(app, include_in_schema=False)
    _document_body(app)
    if tracing_enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # One server span per request; a span per ASGI send would be one per streamed chunk.
        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics",
                                           exclude_spans=["receive", "send"])
    return app


class _Completion:
    """One chat completion whose decision has arrived: the rest of the router's stream, as events or one body."""

    def __init__(self, call: grpc.aio.UnaryStreamCall, decision: router_pb2.RouteDecision,
                 body: ChatCompletionRequest, request_id: str, keepalive_s: float) -> None:
        self.call = call
        self.keepalive_s = keepalive_s
        self.decision = translate.decision_view(decision)
        self.body = body
        self.id = f"chatcmpl-{request_id}"
        self.created = int(time.time())
        self.model = self.decision.pair or AUTO_MODEL

    async def _messages(self, keepalive_s: float | None = None) -> AsyncIterator[router_pb2.GenerateResponse | None]:
        """The chunks, then the summary; UNAVAILABLE if the stream ends without one, or skips or repeats a token
        (nothing is relayed past a gap). With `keepalive_s`, None every `keepalive_s` s while the first message is
        awaited (the prefill: the one long silence of a stream)."""
        next_index = 0
        pending = asyncio.ensure_future(self.call.read()) if keepalive_s else None
        try:
            while pending is not None and not (await asyncio.wait({pending}, timeout=keepalive_s))[0]:
                yield None
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
        while True:
            message = pending.result() if pending is not None else await self.call.read()
            pending = None
            if message is grpc.aio.EOF:
                raise UnavailableError("router: the stream ended without a summary")
            if message.HasField("chunk"):
                if message.chunk.first_token_index != next_index:
                    raise UnavailableError(f"router: token {message.chunk.first_token_index} arrived where "
                                           f"{next_index} was expected")
                next_index += len(message.chunk.token_ids)
            yield message
            if message.HasField("summary"):
                return

    async def _drain(self) -> None:
        """Reads on to the router's trailing status after the summary, so that the call ends cleanly rather than
        cancelled, and the tracing interceptor, which ends its client span at the end of the stream, ends it."""
        while await self.call.read() is not grpc.aio.EOF:
            pass

    def _chunk(self, delta: Delta, finish_reason: str | None = None, **fields: object) -> bytes:
        return _event(ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                          choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)],
                                          **fields).model_dump_json())

    async def events(self) -> AsyncIterator[bytes]:
        """The server-sent events, framed by FastAPI's SSE encoder. Token chunks, the hot path, are rendered from
        `content_chunk_template` (the `ChatCompletionChunk` of one content delta, checked against the model by
        tests/gateway/test_translate.py) rather than built as a model per token."""
        prometheus_metrics.ACTIVE_STREAMS.inc()
        prefix, suffix = content_chunk_template(self.id, self.created, self.model)
        ended = False  # with [DONE] or an error event; otherwise the client left mid-stream
        try:
            yield self._chunk(Delta(role="assistant", content=""),
                              quantmesh=QuantmeshExtension(decision=self.decision))
            async for message in self._messages(self.keepalive_s):
                if message is None:
                    yield KEEPALIVE_EVENT
                    continue
                if message.HasField("chunk"):
                    if message.chunk.text:
                        yield _event(prefix + json.dumps(message.chunk.text) + suffix)
                    continue
                summary = message.summary
                extension = QuantmeshExtension(decision=self.decision, summary=translate.summary_view(summary))
                finish = translate.finish_reason(summary.finish_reason)
                if self.body.stream_options is not None and self.body.stream_options.include_usage:
                    yield self._chunk(Delta(), finish)
                    yield _event(ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                                     choices=[], usage=translate.usage(summary),
                                                     quantmesh=extension).model_dump_json())
                else:
                    yield self._chunk(Delta(), finish, quantmesh=extension)
                yield _event("[DONE]")
                ended = True
            await self._drain()
        except (grpc.RpcError, QuantmeshError) as exc:
            status, body, _ = errors.error_body(exc)
            log.warning("stream_failed", status=status, error=body.error.message)
            ended = True
            yield _event(body.model_dump_json())
        finally:
            prometheus_metrics.ACTIVE_STREAMS.dec()
            if not ended:
                prometheus_metrics.CLIENT_DISCONNECTS.inc()
            self.call.cancel()  # a no-op once the call has its status

    async def collect(self, request: Request, headers: dict[str, str]) -> JSONResponse:
        """The whole answer as one `chat.completion`; a client that disconnects first cancels the call."""
        collecting = asyncio.ensure_future(self._collect())
        disconnected = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({collecting, disconnected}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnected.cancel()
        if not collecting.done():
            collecting.cancel()
            self.call.cancel()
            prometheus_metrics.CLIENT_DISCONNECTS.inc()
            return JSONResponse(status_code=499, content=ErrorBody(error=ErrorDetail(
                message="client disconnected", type="cancelled")).model_dump())
        completion, summary = collecting.result()
        return JSONResponse(completion.model_dump(), headers={**headers, **translate.summary_headers(summary)})

    async def _collect(self) -> tuple[ChatCompletion, router_pb2.GenerationSummary]:
        parts: list[str] = []
        try:
            async for message in self._messages():
                assert message is not None  # no keep-alives without keepalive_s
                if message.HasField("chunk"):
                    parts.append(message.chunk.text)
                else:
                    summary = message.summary
            await self._drain()
        except BaseException:
            self.call.cancel()
            raise
        completion = ChatCompletion(
            id=self.id, created=self.created, model=self.model, usage=translate.usage(summary),
            choices=[Choice(message=AssistantMessage(content="".join(parts)),
                            finish_reason=translate.finish_reason(summary.finish_reason))],
            quantmesh=QuantmeshExtension(decision=self.decision, summary=translate.summary_view(summary)))
        return completion, summary


def content_chunk_template(completion_id: str, created: int, model: str) -> tuple[str, str]:
    """(prefix, suffix) such that prefix + json.dumps(text) + suffix is the `ChatCompletionChunk` JSON of one
    content delta of this completion (no finish reason, no usage, no extension)."""
    head = json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model},
                      separators=(",", ":"))
    return (head[:-1] + ',"choices":[{"index":0,"delta":{"role":null,"content":',
            '},"finish_reason":null}],"usage":null,"quantmesh":null}')


def _event(data: str) -> bytes:
    return format_sse_event(data_str=data)


async def _disconnected(request: Request) -> None:
    """Returns once the client disconnects (the body has been read, so the next ASGI message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (before it is read whole)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise errors.GatewayError(413, "invalid_request_error", f"body: {declared} bytes is over the gateway's "
                                  f"limit of {limit} bytes (QUANTMESH_GATEWAY_MAX_BODY_BYTES)")
    received = bytearray()
    async for part in request.stream():
        received += part
        if len(received) > limit:
            raise errors.GatewayError(413, "invalid_request_error",
                                      f"body: over the gateway's limit of {limit} bytes")
    return bytes(received)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    return given if 0 < len(given) <= MAX_REQUEST_ID_CHARS and given.isprintable() else uuid.uuid4().hex


def _metadata(request: Request, request_id: str) -> tuple[tuple[str, str], ...]:
    """The router call's metadata: the caller's credentials as they came, and the request id."""
    authorization = request.headers.get("authorization")
    own = (("x-request-id", request_id),)
    return (("authorization", authorization), *own) if authorization is not None else own


_BODY_JSON_SCHEMA = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
_BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {key: value for key, value in _BODY_JSON_SCHEMA.items() if key != "$defs"}}}}}


def _document_body(app: FastAPI) -> None:
    """Adds the request body's nested models to the OpenAPI document (the handler reads and bounds the body itself,
    so FastAPI does not see its model)."""
    default_openapi = app.openapi

    def openapi() -> dict:
        document = default_openapi()
        document.setdefault("components", {}).setdefault("schemas", {}).update(_BODY_JSON_SCHEMA.get("$defs", {}))
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _validation_message(exc: ValidationError | RequestValidationError) -> tuple[str, str | None]:
    problems = exc.errors()
    first = problems[0] if problems else {}
    param = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or None
    if first.get("type") == "json_invalid":
        return f"body: not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})", None
    if first.get("type") == "extra_forbidden":
        return f"{param}: unknown field (the gateway refuses fields it cannot honour)", param
    detail = "; ".join(f"{'.'.join(str(p) for p in problem.get('loc', ()))}: {problem.get('msg')}"
                       for problem in problems[:5])
    return detail, param


def _add_error_handlers(app: FastAPI) -> None:
    """Every failure in OpenAI's error format (`services.gateway.errors`)."""

    @app.exception_handler(ValidationError)
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: ValidationError | RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return errors.response(400, ErrorBody(error=ErrorDetail(message=message, type="invalid_request_error",
                                                                param=param)))

    @app.exception_handler(errors.GatewayError)
    async def gateway_error(_: Request, exc: errors.GatewayError) -> JSONResponse:
        return errors.gateway_error_response(exc)

    @app.exception_handler(QuantmeshError)
    async def mesh_error(_: Request, exc: QuantmeshError) -> JSONResponse:
        return errors.mesh_error_response(exc)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def rpc_error(_: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        return errors.mesh_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return errors.response(exc.status_code, ErrorBody(error=ErrorDetail(message=str(exc.detail),
                                                                            type=error_type)))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_exception", path=request.url.path)
        return errors.response(500, ErrorBody(error=ErrorDetail(
            message=f"internal error in the gateway ({type(exc).__name__})", type="internal_error")))
