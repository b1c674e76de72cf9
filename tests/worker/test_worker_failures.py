"""A worker with corrupt weights stays NOT_SERVING; a worker whose engine dies turns NOT_SERVING and UNAVAILABLE."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import psutil
import pytest
import torch
from grpc_health.v1 import health_pb2
from safetensors.torch import load_file, save_file

from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tools.mesh.launch import WORKER_START_TIMEOUT_S, start_worker
from tools.mesh.processes import health_status

pytestmark = pytest.mark.vllm


def _corrupt_copy(model_dir: Path, target: Path) -> Path:
    """A copy whose embedding rows are permuted: it loads and runs, and answers gibberish (like bad AWQ scales)."""
    shutil.copytree(model_dir, target)
    weights_path = target / "model.safetensors"
    tensors = load_file(weights_path)
    embeddings = tensors["model.embed_tokens.weight"]
    generator = torch.Generator().manual_seed(0)
    tensors["model.embed_tokens.weight"] = embeddings[torch.randperm(embeddings.shape[0], generator=generator)]
    save_file(tensors, weights_path, metadata={"format": "pt"})
    return target


def _generate_error(address: str) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel:
        stub = worker_pb2_grpc.InferenceWorkerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Generate(worker_pb2.GenerateRequest(prompt="Hi", max_output_tokens=2), timeout=10))
    return caught.value


def _wait_for_log_line(log_path: Path, needle: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log_path.exists():
            for line in log_path.read_text(errors="replace").splitlines():
                if needle in line:
                    return line
        time.sleep(0.5)
    pytest.fail(f"no {needle!r} in the worker log after {timeout_s} s:\n{log_path.read_text(errors='replace')[-3000:]}")


def test_corrupt_weights_fail_the_golden_check_and_stay_not_serving(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = _corrupt_copy(tiny_model_dirs["s"], tmp_path / "corrupt-s")
    log_path = tmp_path / "worker.log"
    worker = start_worker(model_dir, served_model_name="corrupt-s", log_path=log_path, wait=False)
    try:
        line = _wait_for_log_line(log_path, '"golden_check_failed"', WORKER_START_TIMEOUT_S)
        assert "The capital of France is" in line and "Paris" in line  # says what was expected
        assert health_status(worker.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        error = _generate_error(worker.address)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "golden-prompt check failed" in error.details()
        time.sleep(2)  # still not serving a moment later: the failure is final
        assert health_status(worker.address) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        worker.stop()


def test_dead_engine_turns_health_not_serving_and_generate_unavailable(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    worker = start_worker(tiny_model_dirs["s"], served_model_name="doomed-s", log_path=tmp_path / "worker.log")
    try:
        assert worker.service.process is not None
        engine_cores = [
            child
            for child in psutil.Process(worker.service.process.pid).children(recursive=True)
            if "EngineCore" in " ".join(child.cmdline()) or "EngineCore" in child.name()
        ]
        assert engine_cores, "no EngineCore child process found"
        for process in engine_cores:
            process.kill()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if health_status(worker.address) == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
            time.sleep(0.2)
        assert health_status(worker.address) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert _generate_error(worker.address).code() == grpc.StatusCode.UNAVAILABLE
    finally:
        worker.stop()


def test_a_truncated_weight_file_stops_the_worker_with_the_file_named(
    tiny_model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = tmp_path / "truncated-s"
    shutil.copytree(tiny_model_dirs["s"], model_dir)
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4096])
    log_path = tmp_path / "worker.log"
    worker = start_worker(model_dir, served_model_name="truncated-s", log_path=log_path, wait=False)
    try:
        line = _wait_for_log_line(log_path, "engine_start_failed", WORKER_START_TIMEOUT_S)
        assert f"{weights}: truncated" in line
        assert worker.service.process is not None
        assert worker.service.process.wait(timeout=60) != 0  # it exits instead of serving
    finally:
        worker.stop()
