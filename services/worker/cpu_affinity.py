"""Keeps the worker's own threads off the cores a CPU engine binds its OpenMP threads to.

vLLM's CPU backend binds each OpenMP thread of the model executor to one core (`VLLM_CPU_OMP_THREADS_BIND`; "auto"
leaves `reserve_cpu_num` cores, one by default, to the serving front end), but it does not move the front end itself.
A worker's front end (the gRPC server, tokenizer, vLLM's output processing) then runs wherever the kernel puts it,
also on the executor's core, and every time it does, it preempts the model step that every stream waits on. Pinning
the front end to the other cores removes that. On the 2-core VM (`benchmarks/worker_stream.py`) the gRPC worker's
tokens/s over the in-process engine's went from 0.73-0.91 to 0.935-0.951 at 16 streams and from 0.81-0.87 to
0.881-0.906 at 64 (five runs after; the README has the details).

Linux only (`/proc/<pid>/task`, `sched_setaffinity` per thread); elsewhere nothing is changed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path


def thread_ids(pid: int | str) -> list[int]:
    """The thread ids of process `pid` ("self": this process); empty when it exited or off Linux."""
    with contextlib.suppress(FileNotFoundError):
        return [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    return []


def engine_bound_cores(engine_pids: Iterable[int]) -> set[int]:
    """The cores that some thread of `engine_pids` is bound to more narrowly than this process may run on.

    Args:
        engine_pids: The engine's processes (for vLLM: the front end's child processes).

    Returns:
        The union of those threads' affinity masks; empty when no thread is bound (GPU engines, "nobind"), or off Linux.
    """
    allowed = os.sched_getaffinity(0)
    bound: set[int] = set()
    for pid in engine_pids:
        for tid in thread_ids(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):  # exited meanwhile, or not ours to read
                cores = os.sched_getaffinity(tid)
                if cores < allowed:
                    bound |= cores
    return bound


def keep_off_cores(cores: set[int]) -> set[int] | None:
    """Pins every thread of this process (and so the threads it starts later) to its allowed cores minus `cores`.

    Returns:
        The cores this process now runs on, or None when nothing changed: `cores` is empty, would leave no core, or
        the platform has no per-thread affinity (`/proc/self/task`).
    """
    remaining = os.sched_getaffinity(0) - cores
    if not cores or not remaining or not Path("/proc/self/task").is_dir():
        return None
    for tid in thread_ids("self"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(tid, remaining)
    return remaining
