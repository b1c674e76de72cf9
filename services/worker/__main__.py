"""`python -m services.worker`: runs one InferenceWorker configured by `QUANTMESH_WORKER_*` variables."""

import asyncio

from services.worker.server import serve
from services.worker.settings import WorkerSettings

if __name__ == "__main__":  # vLLM spawns processes that re-import __main__: the guard is required
    asyncio.run(serve(WorkerSettings()))
