"""gRPC handlers of `RouterAdminService`: read, validate (dry run) and publish the profile document."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from core import vocabulary
from core.errors import FailedPreconditionError, InvalidArgumentError, UnavailableError
from core.profiles import ProfileValidationError, parse_profile_document
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from services.router.profile_store import ActiveProfiles, ProfileStore


class RouterAdminServicer(router_pb2_grpc.RouterAdminServiceServicer):
    """GetProfiles, ValidateProfiles (dry run) and PublishProfiles.

    Args:
        profiles: The profiles in use.
        store: The Redis store, or None for a router without Redis (publishing is then UNAVAILABLE).
    """

    def __init__(self, profiles: ActiveProfiles, store: ProfileStore | None) -> None:
        self._profiles = profiles
        self._store = store

    async def GetProfiles(self, request: router_pb2.GetProfilesRequest,
                          context: grpc.aio.ServicerContext) -> router_pb2.GetProfilesResponse:
        loaded = self._profiles.current
        if loaded is None:
            raise FailedPreconditionError("no profiles loaded")
        loaded_at = Timestamp()
        loaded_at.FromDatetime(loaded.loaded_at)
        return router_pb2.GetProfilesResponse(document_json=loaded.document.to_json(),
                                              version=loaded.document.version,
                                              source=vocabulary.to_proto(loaded.source), loaded_at=loaded_at)

    async def ValidateProfiles(self, request: router_pb2.ValidateProfilesRequest,
                               context: grpc.aio.ServicerContext) -> router_pb2.ValidateProfilesResponse:
        try:
            parse_profile_document(request.document_json)
        except ProfileValidationError as exc:
            return router_pb2.ValidateProfilesResponse(valid=False, errors=exc.errors)
        return router_pb2.ValidateProfilesResponse(valid=True)

    async def PublishProfiles(self, request: router_pb2.PublishProfilesRequest,
                              context: grpc.aio.ServicerContext) -> router_pb2.PublishProfilesResponse:
        try:
            document = parse_profile_document(request.document_json)
        except ProfileValidationError as exc:
            raise InvalidArgumentError("document_json: " + "; ".join(exc.errors)) from None
        if self._store is None:
            raise UnavailableError("this router has no profile store (QUANTMESH_ROUTER_REDIS_URL is unset)")
        stored = await self._store.publish(document, request.expected_version)
        return router_pb2.PublishProfilesResponse(version=stored.version)
