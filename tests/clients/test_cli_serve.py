"""`quantmesh serve <service>` runs the service in the CLI's own process, like `python -m services.<service>`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from grpc_health.v1 import health_pb2

from tests.fixtures.waiting import wait_until
from tools.mesh.processes import free_port, health_status


def test_serve_classifier_reports_serving_and_drains_on_sigterm() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "clients.cli", "serve", "classifier"],
        env={**os.environ, "QUANTMESH_CLASSIFIER_HOST": "127.0.0.1", "QUANTMESH_CLASSIFIER_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    def serving() -> bool:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        return health_status(f"127.0.0.1:{port}") == health_pb2.HealthCheckResponse.SERVING

    try:
        wait_until(serving, 60, interval_s=0.2, message="classifier not SERVING")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert health_status(f"127.0.0.1:{port}") is None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
