"""Start one InferenceWorker, Classifier, gateway or batch consumer as a child process on a free loopback port and wait until it
serves.

Used by `quantmesh up`, the benchmarks and the tests: every service runs as its own process, as in production.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tools.mesh.processes import ServiceProcess, free_port, http_ok

WORKER_START_TIMEOUT_S = 240.0
CLASSIFIER_START_TIMEOUT_S = 30.0
GATEWAY_START_TIMEOUT_S = 60.0
BATCH_CONSUMER_START_TIMEOUT_S = 60.0


@dataclass
class WorkerProcess:
    """A worker child process and the pair it serves."""

    address: str
    served_model_name: str
    quantization: str
    model_dir: Path
    service: ServiceProcess

    def stop(self) -> int | None:
        """SIGTERM (drain), then SIGKILL of the process group if needed; returns the exit code."""
        return self.service.stop()


def start_worker(
    model_dir: Path,
    *,
    served_model_name: str,
    quantization: str = "none",
    engine: str = "vllm",
    log_path: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout_s: float = WORKER_START_TIMEOUT_S,
) -> WorkerProcess:
    """Starts `python -m services.worker` serving `model_dir` on a free loopback port.

    Args:
        model_dir: A model directory (for example ``tiny_model_dirs["s"]``).
        served_model_name: The model_id the worker reports in its pair.
        quantization: The pair's quantization label: none, fp8, awq, gptq or gguf.
        engine: "vllm" (real engine) or "synthetic" (no model; router/gRPC benchmarks only).
        log_path: Where the worker's stdout/stderr go (None: inherit).
        extra_env: More ``QUANTMESH_WORKER_*`` settings (override the ones above).
        wait: Block until health is SERVING.
        timeout_s: How long to wait for SERVING.

    Raises:
        RuntimeError: with ``wait``, the worker exited or was not SERVING in time (the log tail is included; the
            process is killed first).
    """
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {
        "QUANTMESH_WORKER_HOST": "127.0.0.1",
        "QUANTMESH_WORKER_PORT": str(port),
        "QUANTMESH_WORKER_MODEL": str(model_dir),
        "QUANTMESH_WORKER_SERVED_MODEL_NAME": served_model_name,
        "QUANTMESH_WORKER_QUANTIZATION": quantization,
        "QUANTMESH_WORKER_ENGINE": engine,
        **(extra_env or {}),
    }
    service = ServiceProcess(f"worker-{served_model_name}", "services.worker", address, env, log_path).start()
    worker = WorkerProcess(address, served_model_name, quantization, Path(model_dir), service)
    if wait:
        try:
            service.wait_until_serving(timeout_s)
        except RuntimeError:
            service.kill()
            raise
    return worker


@contextmanager
def start_classifier(
    log_path: Path, env: Mapping[str, str] | None = None, start_timeout_s: float = CLASSIFIER_START_TIMEOUT_S
) -> Iterator[ServiceProcess]:
    """Runs the classifier until the block exits; yields it once health reports SERVING.

    Args:
        log_path: The child's stdout and stderr (its structlog JSON lines).
        env: Extra `QUANTMESH_CLASSIFIER_*` settings (the shipped artifact is used unless one is given).
        start_timeout_s: How long to wait for SERVING.

    Raises:
        RuntimeError: the service exited or was not SERVING within `start_timeout_s` (the log tail is included).
    """
    address = f"127.0.0.1:{free_port()}"
    process = ServiceProcess(
        "classifier",
        "services.classifier",
        address,
        env={
            "QUANTMESH_CLASSIFIER_HOST": "127.0.0.1",
            "QUANTMESH_CLASSIFIER_PORT": address.rsplit(":", 1)[1],
            **(env or {}),
        },
        log_path=log_path,
    ).start()
    try:
        process.wait_until_serving(start_timeout_s)
        yield process
    finally:
        process.stop(timeout_s=10.0)


@dataclass
class GatewayProcess:
    """The gateway child process and its base URL (``http://127.0.0.1:<port>``)."""

    url: str
    service: ServiceProcess

    def stop(self) -> int | None:
        return self.service.stop(timeout_s=10.0)


def start_gateway(router_address: str, log_path: Path | None, *, env: Mapping[str, str] | None = None,
                  host: str = "127.0.0.1", port: int | None = None,
                  timeout_s: float = GATEWAY_START_TIMEOUT_S) -> GatewayProcess:
    """Starts `python -m services.gateway` in front of `router_address` and waits until its /readyz is 200 (the
    router's health check says SERVING).

    Args:
        router_address: host:port of the RouterService.
        log_path: The child's stdout and stderr (None: inherit).
        env: More ``QUANTMESH_GATEWAY_*`` settings.
        host / port: Where it listens (port None: a free one).
        timeout_s: How long to wait for /readyz.

    Raises:
        RuntimeError: it exited or was not ready in time (the log tail is included; the process is stopped first).
    """
    port = port or free_port()
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '[::]') else host}:{port}"
    service = ServiceProcess("gateway", "services.gateway", f"{host}:{port}", {
        "QUANTMESH_GATEWAY_HOST": host, "QUANTMESH_GATEWAY_PORT": str(port),
        "QUANTMESH_GATEWAY_ROUTER_ADDRESS": router_address, **(env or {})}, log_path).start()
    try:
        service.wait_until_serving(timeout_s, ready=lambda: http_ok(f"{url}/readyz"))
    except RuntimeError:
        service.kill()
        raise
    return GatewayProcess(url, service)


def start_batch_consumer(name: str, redis_url: str, router_address: str, log_path: Path | None, *,
                         env: Mapping[str, str] | None = None,
                         timeout_s: float = BATCH_CONSUMER_START_TIMEOUT_S) -> ServiceProcess:
    """Starts `python -m services.router.batch` (consumer `name` of the batch stream in `redis_url`, serving through
    `router_address`) with its health port free, and waits until SERVING (its consumer group exists).

    Raises:
        RuntimeError: it exited or was not SERVING in time (the log tail is included; the process is stopped first).
    """
    port = free_port()
    service = ServiceProcess(name, "services.router.batch", f"127.0.0.1:{port}", {
        "QUANTMESH_BATCH_HOST": "127.0.0.1", "QUANTMESH_BATCH_PORT": str(port), "QUANTMESH_BATCH_REDIS_URL": redis_url,
        "QUANTMESH_BATCH_ROUTER_ADDRESS": router_address, "QUANTMESH_BATCH_CONSUMER_NAME": name, **(env or {})},
        log_path).start()
    try:
        service.wait_until_serving(timeout_s)
    except RuntimeError:
        service.kill()
        raise
    return service
