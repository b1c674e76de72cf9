"""`python -m services.router`: runs the router with `QUANTMESH_ROUTER_*` settings."""

import asyncio

from services.router.server import serve
from services.router.settings import RouterSettings

if __name__ == "__main__":
    asyncio.run(serve(RouterSettings()))
