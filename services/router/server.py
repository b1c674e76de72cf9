"""Router server: `create_server` wires profiles, workers and classifier; `serve` runs it until SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc
import structlog

from core.classifier_model.model import ClassifierModel
from quantmesh.classifier.v1 import classifier_pb2_grpc
from quantmesh.router.v1 import batch_pb2, batch_pb2_grpc, router_pb2, router_pb2_grpc
from services.common import tls, tracing
from services.common.auth import AuthCheck, CallerRegistry, Permission
from services.common.logging import configure_logging
from services.common.method_wrapping import CallCheck, WrappingRegistrar
from services.common.server import GrpcServer, build_server, run_until_signal
from services.common.telemetry import process_telemetry
from services.router.admin import RouterAdminServicer
from services.router.batch.servicer import BatchServicer
from services.router.batch.store import BatchStore
from services.router.classifiers import EmbeddedClassifier, QueryClassifier, RemoteClassifier
from services.router.profile_store import (
    ActiveProfiles,
    LoadedProfiles,
    ProfileFollower,
    ProfileStore,
    connect,
)
from services.router.prometheus_metrics import RouterMetrics
from services.router.servicer import RouterServicer
from services.router.settings import RouterSettings
from services.router.workers import WorkerPool

log = structlog.get_logger(__name__)

SERVICE_NAMES = (
    router_pb2.DESCRIPTOR.services_by_name["RouterService"].full_name,
    router_pb2.DESCRIPTOR.services_by_name["RouterAdminService"].full_name,
    batch_pb2.DESCRIPTOR.services_by_name["BatchService"].full_name,
)


def auth_checks(settings: RouterSettings) -> list[CallCheck]:
    """The caller check on RouterService and BatchService ('route') and RouterAdminService ('admin'); none without
    a callers file.

    Raises:
        ValueError / OSError: the callers file is invalid or unreadable.
    """
    if settings.auth_callers_file is None:
        return []
    registry = CallerRegistry.from_file(settings.auth_callers_file)
    return [AuthCheck(registry, dict(zip(SERVICE_NAMES, (Permission.ROUTE, Permission.ADMIN, Permission.ROUTE), strict=True)))]


async def create_server(settings: RouterSettings) -> tuple[GrpcServer, int, Callable[[], Awaitable[None]]]:
    """Builds and starts the router; it reports SERVING once a profile document is loaded.

    Returns:
        (server, bound port, close): `close` stops the profile follower, the load streams and the channels.

    Raises:
        ProfileValidationError / OSError: the static profile file is invalid or unreadable.
        ArtifactError: `classifier_artifact_dir` is set and its artifact is missing or corrupt (the message says which
            file and why).
    """
    profiles = ActiveProfiles()
    traced = tracing.client_interceptors()
    # First retry after 100 ms (the setting's floor), then gRPC's exponential backoff up to the setting.
    upstream_options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                        ("grpc.max_reconnect_backoff_ms", settings.upstream_reconnect_backoff_max_ms)]

    def open_upstream(address: str) -> grpc.aio.Channel:
        return tls.open_channel(address, settings, upstream_options, interceptors=traced)

    workers = WorkerPool(settings.breaker_config(), settings.load_watch_interval_ms,
                         settings.load_stale_after_ms / 1000.0, open_channel=open_upstream,
                         resolve_interval_s=settings.replica_resolve_interval_s)
    metrics = RouterMetrics()
    profiles.on_change(lambda loaded: workers.reconcile(loaded.document))
    profiles.on_change(metrics.profiles_loaded)
    if settings.static_profiles_path is not None:
        profiles.load_static_file(settings.static_profiles_path)

    store = follower = redis_client = batch_store = None
    if settings.redis_url:
        redis_client = connect(settings.redis_url)
        store = ProfileStore(redis_client, settings.profiles_prefix)
        follower = ProfileFollower(store, profiles)
        batch_store = BatchStore(redis_client, settings.batch_prefix)

    classifier, classifier_channel = _query_classifier(settings, open_upstream)

    router = RouterServicer(profiles, workers, classifier, settings.classifier_timeout_ms / 1000.0,
                            settings.policy_config(), settings.retry_policy(), settings.worker_deadline_margin_ms,
                            admission_control=settings.admission_control, max_prompt_bytes=settings.max_prompt_bytes,
                            metrics=metrics, record_prompt_text=settings.record_prompt_text)
    admin = RouterAdminServicer(profiles, store)
    batches = BatchServicer(batch_store, settings.batch_limits(), settings.max_prompt_bytes)

    def register(server: WrappingRegistrar) -> None:
        router_pb2_grpc.add_RouterServiceServicer_to_server(router, server)
        router_pb2_grpc.add_RouterAdminServiceServicer_to_server(admin, server)
        batch_pb2_grpc.add_BatchServiceServicer_to_server(batches, server)

    grpc_server = await build_server(settings, SERVICE_NAMES, register, checks=auth_checks(settings))
    await grpc_server.start()
    metrics.start(lambda: workers.states(profiles.current.document) if profiles.current is not None else {})
    if follower is not None:
        follower.start()
    await _serve_once_profiles_loaded(grpc_server, profiles)

    async def close() -> None:
        await metrics.stop()
        if follower is not None:
            await follower.stop()
        await workers.close()
        if classifier_channel is not None:
            await classifier_channel.close()
        if redis_client is not None:
            await redis_client.aclose()

    log.info("router_started", port=grpc_server.port,
             classifier=(f"embedded {classifier.model_version}" if isinstance(classifier, EmbeddedClassifier)
                         else settings.classifier_address),
             redis=settings.redis_url is not None, static_profiles=str(settings.static_profiles_path))
    return grpc_server, grpc_server.port, close


def _query_classifier(settings: RouterSettings, open_upstream: Callable[[str], grpc.aio.Channel]
                      ) -> tuple[QueryClassifier | None, grpc.aio.Channel | None]:
    """The classifier the settings ask for (the model in process, or the ClassifierService), and the channel to close
    (None in process); (None, None) for a router that always uses the degraded rules."""
    if settings.classifier_artifact_dir is not None:
        return EmbeddedClassifier(ClassifierModel.load(settings.classifier_artifact_dir)), None
    if settings.classifier_address:
        channel = open_upstream(settings.classifier_address)
        return RemoteClassifier(classifier_pb2_grpc.ClassifierServiceStub(channel)), channel
    return None, None


async def _serve_once_profiles_loaded(grpc_server: GrpcServer, profiles: ActiveProfiles) -> None:
    """Serving needs profiles: SERVING at once from a static file, or as soon as the Redis follower reads them."""
    if profiles.current is not None:
        await grpc_server.set_serving(True)
        return
    pending: set[asyncio.Task[None]] = set()  # keeps the serving-switch task referenced until it has run

    def serve_once_loaded(_: LoadedProfiles) -> None:
        task = asyncio.get_running_loop().create_task(grpc_server.set_serving(True))
        pending.add(task)
        task.add_done_callback(pending.discard)

    profiles.on_change(serve_once_loaded)


async def serve(settings: RouterSettings) -> None:
    """Runs the router until SIGTERM/SIGINT, then drains and closes its connections."""
    configure_logging(settings.log_level, json=settings.log_json)
    with process_telemetry(settings, "quantmesh-router"):
        grpc_server, _, close = await create_server(settings)
        await run_until_signal(grpc_server, settings, on_shutdown=close)
