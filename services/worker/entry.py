"""The worker's process entry point, and the guard that stops vLLM's engine processes when the worker dies.

vLLM runs its engine in spawned processes (`VLLM::EngineCore`, which spawns `VLLM::Worker`). SIGTERM and SIGINT of
the worker shut them down through vLLM's own shutdown, but a worker killed with SIGKILL (or by the OOM killer) runs
no code, and its engine processes would keep running at full CPU. So every process spawned from this module watches
its parent: multiprocessing's spawn imports the parent's main module in each child as `__mp_main__` (`python -m
services.worker` runs this module as main, see `__main__.py`: spawn skips main modules named `*.__main__`), and
that import starts `watch_parent`, which exits the process as soon as it is re-parented.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading

PARENT_POLL_S = 0.5  # how soon an orphaned engine process notices; a getppid() call costs microseconds


def watch_parent(poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Starts a daemon thread that ends this process (exit status 1) once its parent process has died.

    A dead parent is seen as a changed parent pid (the orphan is re-parented to init or a subreaper).
    """
    parent = os.getppid()

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(poll_s):
            if os.getppid() != parent:
                print(f"quantmesh worker: parent process {parent} died; engine process {os.getpid()} exits",
                      file=sys.stderr, flush=True)
                os._exit(1)

    thread = threading.Thread(target=watch, name="quantmesh-parent-watch", daemon=True)
    thread.start()
    return thread


def main() -> None:
    from services.worker.server import serve  # here, not at import: spawned engine processes need neither
    from services.worker.settings import WorkerSettings

    asyncio.run(serve(WorkerSettings()))


if __name__ == "__mp_main__":  # a process vLLM spawned from the worker (see the module docstring)
    watch_parent()
elif __name__ == "__main__":
    main()
