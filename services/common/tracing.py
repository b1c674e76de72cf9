"""OpenTelemetry tracing of the services: one trace per request across router, classifier and worker.

`configure_tracing` installs an SDK tracer provider when the standard `OTEL_*` environment variables ask for an
exporter, and does nothing otherwise (no provider, no interceptors: zero cost when tracing is off):
- `OTEL_TRACES_EXPORTER`: comma-separated `otlp`, `console` or `none`. Unset: `otlp` when an OTLP endpoint is set
  (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), else nothing.
- `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: `grpc` (default, as in deploy/) or
  `http/protobuf`; endpoint, headers, timeouts and TLS are read by the OTLP exporter itself.
- `OTEL_SERVICE_NAME` (default `quantmesh-<service>`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` and
  `OTEL_BSP_*` (batching) as the SDK defines them.

When tracing is on, `server_interceptors()` gives the aio server interceptor of `opentelemetry-instrumentation-grpc`
(added to every server by `services.common.server.build_server`) and `client_interceptors()` the client ones (for the
router's channels). The W3C trace context travels in gRPC metadata (`traceparent`, `tracestate`). Health checks and
the long-lived `WatchLoad` streams are not traced: they are not requests, and a stream that lives for hours would be
one endless span.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import grpc
import structlog
from opentelemetry import trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor, filters
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

log = structlog.get_logger(__name__)

_UNTRACED = filters.any_of(filters.health_check(), filters.method_name("WatchLoad"))
TRACED_RPCS = filters.negate(_UNTRACED)

_provider: TracerProvider | None = None


def _exporter_names() -> list[str]:
    configured = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if configured:
        return [name.strip() for name in configured.split(",") if name.strip() and name.strip() != "none"]
    has_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return ["otlp"] if has_endpoint else []


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER: unsupported exporter {name!r} (otlp, console or none)")
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r} (grpc or http/protobuf)")
    return OTLPSpanExporter()


def configure_tracing(default_service_name: str) -> bool:
    """Installs the global tracer provider with the exporters the environment asks for (module docstring).

    Args:
        default_service_name: `service.name` unless `OTEL_SERVICE_NAME` sets one, e.g. "quantmesh-router".

    Returns:
        True when tracing is on; False (nothing installed) when no exporter is configured.

    Raises:
        ValueError: an unsupported exporter or protocol is named.
    """
    global _provider
    names = _exporter_names()
    if not names:
        return False
    service_name = os.environ.get("OTEL_SERVICE_NAME") or default_service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    for name in names:
        provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
    trace.set_tracer_provider(provider)
    _provider = provider
    log.info("tracing_enabled", service_name=service_name, exporters=names)
    return True


def tracing_enabled() -> bool:
    return _provider is not None


def server_interceptors() -> Sequence[grpc.aio.ServerInterceptor]:
    """The tracing server interceptor (outermost, so it sees the status the handlers end with), or none."""
    return [aio_server_interceptor(filter_=TRACED_RPCS)] if _provider is not None else []


def client_interceptors() -> Sequence[grpc.aio.ClientInterceptor]:
    """Tracing interceptors for an outgoing `grpc.aio` channel (context injected into metadata), or none."""
    return aio_client_interceptors(filter_=TRACED_RPCS) if _provider is not None else []


def shutdown_tracing() -> None:
    """Exports the spans still batched and stops the exporters (call once, at process shutdown)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits (the form trace UIs search for), or None outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
