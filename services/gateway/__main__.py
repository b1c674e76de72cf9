"""`python -m services.gateway`: runs the gateway with `QUANTMESH_GATEWAY_*` settings (uvicorn)."""

from services.gateway.server import serve
from services.gateway.settings import GatewaySettings

if __name__ == "__main__":
    serve(GatewaySettings())
