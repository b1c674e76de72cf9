"""`python -m services.worker`: runs one InferenceWorker configured by `QUANTMESH_WORKER_*` variables.

It runs `services.worker.entry` as the main module (not this file) so that the engine processes vLLM spawns import
that module and watch their parent (see `services/worker/entry.py`).
"""

import runpy

if __name__ == "__main__":  # vLLM spawns processes that re-import the main module: the guard is required
    runpy.run_module("services.worker.entry", run_name="__main__", alter_sys=True)
