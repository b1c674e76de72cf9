"""A stopped or killed InferenceWorker leaves no vLLM engine process behind (SIGTERM, SIGINT and SIGKILL).

Only the worker's main process is signalled (not its process group, as `quantmesh up` and Kubernetes would):
SIGTERM and SIGINT go through vLLM's shutdown, and after SIGKILL the engine processes notice they were orphaned
(`services/worker/entry.py`) and exit.
"""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.vllm

ENGINE_PROCESS_NAMES = ("VLLM::EngineCore", "VLLM::Worker")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(processes: list[psutil.Process]) -> str:
    return ", ".join(f"{p.pid} {p.name() if _alive(p) else '(gone)'}" for p in processes)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_no_engine_process_outlives_the_worker(worker_factory, tiny_model_dirs, sig: signal.Signals) -> None:
    worker = worker_factory(tiny_model_dirs["s"], served_model_name=f"tree-{sig.name.lower()}")
    main = psutil.Process(worker.service.process.pid)  # type: ignore[union-attr]
    descendants = main.children(recursive=True)
    names = {p.name() for p in descendants}
    assert set(ENGINE_PROCESS_NAMES) <= names, f"expected vLLM's engine processes under the worker, got {names}"

    os.kill(main.pid, sig)
    wait_until(lambda: not _alive(main), 60.0, interval_s=0.2, message=f"the worker survived {sig.name}")
    wait_until(lambda: not any(_alive(p) for p in descendants), 30.0, interval_s=0.2,
               message=lambda: f"still running after {sig.name} of the worker: {_describe(descendants)}")
