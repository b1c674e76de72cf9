"""`client.profiles`: read, validate (dry run) and publish the router's profile document (`RouterAdminService`)."""

from __future__ import annotations

import grpc

from clients.messages import ProfilesDocument, ValidationResult
from core.errors import from_rpc_error
from quantmesh.router.v1 import router_pb2, router_pb2_grpc


class AsyncProfilesAdmin:
    """`RouterAdminService` over an `AsyncQuantmeshClient`'s channel (profile document get / validate / publish)."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = router_pb2_grpc.RouterAdminServiceStub(channel)
        self._timeout_s = timeout_s

    async def get(self) -> ProfilesDocument:
        """The profile document the router uses. Raises `QuantmeshError` subclasses (UNAVAILABLE: unreachable)."""
        try:
            response = await self._stub.GetProfiles(router_pb2.GetProfilesRequest(), timeout=self._timeout_s)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return ProfilesDocument.from_proto(response)

    async def validate(self, document_json: str) -> ValidationResult:
        """Validates a document without publishing it; problems come back in `errors` (not as an exception)."""
        try:
            response = await self._stub.ValidateProfiles(
                router_pb2.ValidateProfilesRequest(document_json=document_json), timeout=self._timeout_s
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return ValidationResult(response.valid, tuple(response.errors))

    async def publish(self, document_json: str, expected_version: int = 0) -> int:
        """Validates then publishes `document_json` as a new version; returns the version assigned.

        Args:
            document_json: The profile document (its version field is assigned by the store).
            expected_version: Publish only if the current version equals this; 0 publishes regardless.

        Raises:
            InvalidArgumentError: invalid document (nothing changed; the message lists the fields).
            AbortedError: `expected_version` is stale.
            UnavailableError: the profile store cannot be reached (nothing changed).
        """
        try:
            response = await self._stub.PublishProfiles(
                router_pb2.PublishProfilesRequest(document_json=document_json, expected_version=expected_version),
                timeout=self._timeout_s,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return int(response.version)


class ProfilesAdmin:
    """The sync twin of `AsyncProfilesAdmin`."""

    def __init__(self, channel: grpc.Channel, timeout_s: float) -> None:
        self._stub = router_pb2_grpc.RouterAdminServiceStub(channel)
        self._timeout_s = timeout_s

    def get(self) -> ProfilesDocument:
        """See `AsyncProfilesAdmin.get`."""
        try:
            return ProfilesDocument.from_proto(
                self._stub.GetProfiles(router_pb2.GetProfilesRequest(), timeout=self._timeout_s)
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def validate(self, document_json: str) -> ValidationResult:
        """See `AsyncProfilesAdmin.validate`."""
        try:
            response = self._stub.ValidateProfiles(
                router_pb2.ValidateProfilesRequest(document_json=document_json), timeout=self._timeout_s
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return ValidationResult(response.valid, tuple(response.errors))

    def publish(self, document_json: str, expected_version: int = 0) -> int:
        """See `AsyncProfilesAdmin.publish`."""
        try:
            response = self._stub.PublishProfiles(
                router_pb2.PublishProfilesRequest(document_json=document_json, expected_version=expected_version),
                timeout=self._timeout_s,
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return int(response.version)
