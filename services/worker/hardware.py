"""What the worker runs on: a GPU through NVML when there is one, host figures otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class HardwareInfo:
    """Accelerator description for `GpuInfo` (index -1 and name "cpu" without a GPU); memory in bytes."""

    index: int
    name: str
    memory_total_bytes: int
    memory_used_bytes: int


def describe_hardware(gpu_index: int | None, *, reserved_bytes: int, engine_pids: Sequence[int]) -> HardwareInfo:
    """NVML figures of GPU `gpu_index` when NVML (package nvidia-ml-py) finds it; host figures otherwise.

    Args:
        gpu_index: The GPU the engine is bound to, or None on a CPU.
        reserved_bytes: Host memory reserved for the engine (KV cache + weights), the CPU "total".
        engine_pids: The engine's processes: their resident memory is the CPU "used" figure, and on a GPU the
            memory NVML attributes to them.
    """
    if gpu_index is not None:
        gpu = _nvml_info(gpu_index, engine_pids)
        if gpu is not None:
            return gpu
    used = 0
    for pid in engine_pids:
        try:
            used += psutil.Process(pid).memory_info().rss
        except psutil.Error:  # a process that exited between listing and reading
            continue
    return HardwareInfo(index=-1, name="cpu", memory_total_bytes=reserved_bytes, memory_used_bytes=used)


def _nvml_info(gpu_index: int, engine_pids: Sequence[int]) -> HardwareInfo | None:
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(gpu_index)
        name = pynvml.nvmlDeviceGetName(handle)
        total = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
        pids = set(engine_pids)
        used = sum(
            int(proc.usedGpuMemory or 0)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            if proc.pid in pids
        )
        return HardwareInfo(index=gpu_index, name=str(name), memory_total_bytes=total, memory_used_bytes=used)
    except pynvml.NVMLError:
        return None
    finally:
        pynvml.nvmlShutdown()
