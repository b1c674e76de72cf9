"""Publishes a profile document through the router's admin RPC (`RouterAdminService.PublishProfiles`).

The router validates the document with the same pydantic models, assigns the next version and swaps it in
atomically for every router (see `services.router.profile_store`); an invalid document changes nothing.
"""

from __future__ import annotations

import grpc

from core.profiles import ProfileDocument
from quantmesh.router.v1 import router_pb2, router_pb2_grpc


class PublishError(Exception):
    """The router refused or could not publish the document; nothing changed. The message has the status."""


async def publish_document(router_address: str, document: ProfileDocument, *, expected_version: int = 0,
                           timeout_s: float = 10.0) -> int:
    """Publishes `document` and returns the version the store assigned.

    Raises:
        PublishError: INVALID_ARGUMENT (the router's validation, field paths in the message), ABORTED
            (`expected_version` is stale), UNAVAILABLE (router or its Redis unreachable), or any other status.
    """
    async with grpc.aio.insecure_channel(router_address) as channel:
        stub = router_pb2_grpc.RouterAdminServiceStub(channel)
        try:
            response = await stub.PublishProfiles(
                router_pb2.PublishProfilesRequest(document_json=document.to_json(), expected_version=expected_version),
                timeout=timeout_s,
            )
        except grpc.aio.AioRpcError as exc:
            raise PublishError(f"router {router_address}: PublishProfiles failed "
                               f"({exc.code().name}: {exc.details()})") from None
    return response.version
