"""Keeping the worker's threads off the engine's bound cores (`services.worker.cpu_affinity`), on real processes.

Each case runs the code under test in a child process, so the test session's own affinity never changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from services.worker.cpu_affinity import engine_bound_cores
from tools.paths import REPO_ROOT

ALLOWED = sorted(os.sched_getaffinity(0))
pytestmark = pytest.mark.skipif(len(ALLOWED) < 2 or sys.platform != "linux", reason="needs Linux and 2+ cores")
BOUND_CORE = ALLOWED[-1]

# A stand-in for vLLM's executor: its main thread keeps the inherited mask, one thread binds itself to one core (as
# an OpenMP thread under VLLM_CPU_OMP_THREADS_BIND does).
EXECUTOR = textwrap.dedent(f"""
    import os, sys, threading, time
    def bound():
        os.sched_setaffinity(0, {{{BOUND_CORE}}})
        print("ready", flush=True)
        time.sleep(60)  # deliberate: stays alive (bound) until the test kills the process
    threading.Thread(target=bound, daemon=True).start()
    time.sleep(60)
""")

# The front end: one thread started before and one after `keep_off_cores`; prints every thread's mask.
FRONT_END = textwrap.dedent("""
    import json, os, sys, threading
    from services.worker.cpu_affinity import keep_off_cores
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
    everything = keep_off_cores(os.sched_getaffinity(0))
    nothing = keep_off_cores(set())
    remaining = keep_off_cores({int(sys.argv[1])})
    threading.Thread(target=stop.wait, daemon=True).start()
    masks = [sorted(os.sched_getaffinity(int(tid))) for tid in os.listdir("/proc/self/task")]
    print(json.dumps({"everything": everything, "nothing": nothing, "remaining": sorted(remaining), "masks": masks}))
""")


def test_engine_bound_cores_are_those_of_threads_bound_narrower_than_this_process() -> None:
    executor = subprocess.Popen([sys.executable, "-c", EXECUTOR], stdout=subprocess.PIPE, text=True)
    unbound = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert executor.stdout is not None and executor.stdout.readline().strip() == "ready"
        assert engine_bound_cores([executor.pid, unbound.pid]) == {BOUND_CORE}
        assert engine_bound_cores([unbound.pid]) == set()
        assert engine_bound_cores([]) == set()
    finally:
        executor.kill()
        unbound.kill()
        executor.wait()
        unbound.wait()


def test_keep_off_cores_moves_every_thread_and_the_ones_started_later() -> None:
    result = subprocess.run([sys.executable, "-c", FRONT_END, str(BOUND_CORE)], capture_output=True, text=True,
                            check=True, timeout=60, cwd=REPO_ROOT)
    report = json.loads(result.stdout)
    assert report["everything"] is None and report["nothing"] is None  # no core left / nothing to avoid: unchanged
    expected = [core for core in ALLOWED if core != BOUND_CORE]
    assert report["remaining"] == expected
    assert len(report["masks"]) >= 3 and all(mask == expected for mask in report["masks"])
