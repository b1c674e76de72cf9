"""InferenceWorker server: the gRPC server plus the engine's lifecycle.

Start-up: the gRPC server starts at once (health NOT_SERVING, Generate UNAVAILABLE), the engine loads in the
background, the golden-prompt check runs (`services.worker.golden`), and only then health turns SERVING. A failed
check logs `golden_check_failed` and the worker stays NOT_SERVING; an engine that cannot start logs
`engine_start_failed` and the process exits with code 1. A monitor checks the engine's health every
`health_poll_interval_s` (and at once when a request saw it die) and turns health NOT_SERVING when it died.
Shutdown (SIGTERM/SIGINT): health NOT_SERVING, in-flight RPCs drained for `shutdown_grace_s`, then the engine closed.

Unlike the other services, `create_server` returns a `WorkerServer` (the `GrpcServer` with the engine and its
lifecycle) because the engine must start after the server and stop after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog

from core.golden import load_golden_prompts
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from services.common.logging import configure_logging
from services.common.server import GrpcServer, build_server, run_until_signal
from services.common.telemetry import process_telemetry
from services.worker.admission import WorkerAdmission
from services.worker.engine import Engine, EngineDeadError
from services.worker.golden import run_golden_check
from services.worker.prometheus_metrics import WorkerMetrics
from services.worker.servicer import InferenceWorkerServicer, ServingState
from services.worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

SERVICE_NAME = worker_pb2.DESCRIPTOR.services_by_name["InferenceWorkerService"].full_name


def build_engine(settings: WorkerSettings) -> Engine:
    """The engine the settings ask for (not started)."""
    if settings.engine == "synthetic":
        from services.worker.synthetic_engine import SyntheticEngine

        return SyntheticEngine(
            settings.model,
            tokens_per_s=settings.synthetic_tokens_per_s,
            ttft_ms=settings.synthetic_ttft_ms,
            max_model_len=settings.max_model_len,
            max_num_seqs=settings.max_num_seqs,
        )
    from services.worker.vllm_engine import VllmEngine

    return VllmEngine(
        settings.model,
        served_model_name=settings.served_model_name,
        quantization=settings.vllm_quantization(),
        max_model_len=settings.max_model_len,
        max_num_seqs=settings.max_num_seqs,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        kv_cache_memory_bytes=settings.kv_cache_memory_bytes,
        gpu_index=settings.gpu_index,
        cpu_threads_bind=settings.cpu_threads_bind,
        isolate_engine_cores=settings.isolate_engine_cores,
        dtype=settings.dtype,
    )


class WorkerServer:
    """The bound gRPC server, its engine and the engine's lifecycle task.

    Attributes:
        grpc_server: The `GrpcServer` (health, reflection, wrapped handlers).
        engine: The engine (started by `start`).
        state: Serving state shared with the servicer.
        start_failed: Set when the engine could not start (the process should exit).
    """

    def __init__(self, settings: WorkerSettings, grpc_server: GrpcServer, engine: Engine, state: ServingState,
                 engine_died: asyncio.Event) -> None:
        self.settings = settings
        self.grpc_server = grpc_server
        self.engine = engine
        self.state = state
        self.start_failed = False
        self._engine_died = engine_died
        self._lifecycle: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        return self.grpc_server.port

    async def start(self) -> None:
        """Starts the gRPC server (NOT_SERVING) and, in the background, the engine, the check and the monitor."""
        await self.grpc_server.start()
        self._lifecycle = asyncio.create_task(self._run_lifecycle(), name="worker-lifecycle")

    async def _run_lifecycle(self) -> None:
        try:
            await self.engine.start()
        except Exception:
            log.exception("engine_start_failed", model=self.settings.model)
            self.state.reason = "engine failed to start"
            self.start_failed = True
            signal.raise_signal(signal.SIGTERM)  # shut down through the same drain path as an operator's SIGTERM
            return
        if await self._golden_check_passes():
            self.state.serving, self.state.reason = True, ""
            await self.grpc_server.set_serving(True)
            log.info("worker_serving", served_model_name=self.settings.served_model_name, port=self.port)
        await self._monitor_engine()

    async def _golden_check_passes(self) -> bool:
        """Runs the check (True when none is configured, with a warning); logs why it failed."""
        path = self.settings.resolved_golden_prompts_file()
        if not self.settings.golden_check or path is None:
            log.warning("golden_check_skipped", model=self.settings.model, enabled=self.settings.golden_check)
            return True
        try:
            failures = await run_golden_check(self.engine, load_golden_prompts(path))
        except Exception:
            log.exception("golden_check_failed", model=self.settings.model, file=str(path))
            self.state.reason = "golden-prompt check could not run"
            return False
        if failures:
            self.state.reason = "golden-prompt check failed (weights corrupt or badly quantized?)"
            log.error(
                "golden_check_failed",
                model=self.settings.model,
                quantization=self.settings.quantization,
                file=str(path),
                failures=[{"prompt": f.prompt, "expected": f.expected, "output": f.output} for f in failures],
            )
            return False
        log.info("golden_check_passed", model=self.settings.model, file=str(path))
        return True

    async def _monitor_engine(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._engine_died.wait(), self.settings.health_poll_interval_s)
            try:
                await self.engine.check_health()
            except EngineDeadError as exc:
                self.state.serving, self.state.reason = False, f"engine died: {exc}"
                await self.grpc_server.set_serving(False)
                log.error("engine_dead", model=self.settings.model, error=str(exc))
                return
            self._engine_died.clear()

    async def stop(self, grace_s: float | None) -> None:
        """Drains the gRPC server, then closes the engine."""
        await self.grpc_server.stop(grace_s)
        await self.close_engine()

    async def close_engine(self) -> None:
        """Stops the lifecycle task and the engine (after the gRPC server stopped)."""
        if self._lifecycle is not None:
            self._lifecycle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lifecycle
        await self.engine.close()


async def create_server(settings: WorkerSettings, engine: Engine | None = None) -> tuple[WorkerServer, int]:
    """Builds and binds the worker (not started); `engine` defaults to the one the settings ask for."""
    engine = engine or build_engine(settings)
    state = ServingState()
    engine_died = asyncio.Event()
    servicer = InferenceWorkerServicer(
        engine,
        state,
        served_model_name=settings.served_model_name,
        quantization=settings.quantization,
        max_model_len=settings.max_model_len,
        watch_load_interval_ms=settings.watch_load_interval_ms,
        engine_died=engine_died,
        coalesce_window_ms=settings.stream_coalesce_window_ms,
        coalesce_min_streams=settings.stream_coalesce_min_streams,
        coalesce_max_window_ms=settings.stream_coalesce_max_window_ms,
        max_chunks_per_s=settings.stream_max_chunks_per_s,
        admission=WorkerAdmission(enabled=settings.admission_control),
    )
    grpc_server = await build_server(
        settings, [SERVICE_NAME], lambda server: worker_pb2_grpc.add_InferenceWorkerServiceServicer_to_server(
            servicer, server
        )
    )
    worker = WorkerServer(settings, grpc_server, engine, state, engine_died)
    return worker, worker.port


async def serve(settings: WorkerSettings) -> None:
    """Runs the worker until SIGTERM/SIGINT (or an engine that cannot start: exit code 1)."""
    configure_logging(settings.log_level, json=settings.log_json)
    with process_telemetry(settings, "quantmesh-worker"):
        await _serve(settings)


async def _serve(settings: WorkerSettings) -> None:
    worker, port = await create_server(settings)
    await worker.start()
    # The load gauges of this pair (the servicer binds the same children for its request metrics).
    metrics = WorkerMetrics(settings.served_model_name, settings.quantization)
    load_export = asyncio.create_task(metrics.export_load(worker.engine), name="worker-metrics-load")
    log.info(
        "worker_listening",
        host=settings.host,
        port=port,
        engine=settings.engine,
        model=settings.model,
        served_model_name=settings.served_model_name,
        quantization=settings.quantization,
    )
    await run_until_signal(worker.grpc_server, settings, on_shutdown=worker.close_engine)
    load_export.cancel()
    if worker.start_failed:
        raise SystemExit(1)
