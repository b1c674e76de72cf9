#!/usr/bin/env python3
"""Container health check over the standard gRPC health protocol (`grpc.health.v1.Health/Check`).

Exit status 0 when the server at ADDRESS reports SERVING for SERVICE, 1 when it reports anything else or does not
answer within the timeout (Docker's HEALTHCHECK contract: 0 healthy, 1 unhealthy).

    quantmesh-grpc-health-check [--address HOST:PORT] [--service NAME] [--timeout-s SECONDS]

Defaults come from HEALTHCHECK_GRPC_ADDRESS (127.0.0.1:50051) and HEALTHCHECK_GRPC_SERVICE ("" = the whole server),
so one Dockerfile HEALTHCHECK line serves every service of an image and compose only sets the two variables.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str, timeout_s: float) -> tuple[bool, str]:
    """Returns (healthy, one-line reason) for `service` at `address`."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError as exc:
            return False, f"{address} {service!r}: {exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, f"{address} {service!r}: {status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=os.environ.get("HEALTHCHECK_GRPC_ADDRESS", "127.0.0.1:50051"))
    parser.add_argument("--service", default=os.environ.get("HEALTHCHECK_GRPC_SERVICE", ""))
    parser.add_argument("--timeout-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    healthy, reason = check(args.address, args.service, args.timeout_s)
    print(reason, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
