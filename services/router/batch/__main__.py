"""`python -m services.router.batch`: runs one batch consumer with `QUANTMESH_BATCH_*` settings."""

import asyncio

from services.router.batch.server import serve
from services.router.batch.settings import BatchConsumerSettings

if __name__ == "__main__":
    asyncio.run(serve(BatchConsumerSettings()))
