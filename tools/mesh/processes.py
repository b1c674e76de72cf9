"""Start quantmesh services as child processes and wait for them to be healthy.

Used by `quantmesh up` and by the tests, which run every service as its own process the way production does.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

_HANDED_OUT: set[int] = set()
_LOWEST_PORT = 10_000


def free_port(host: str = "127.0.0.1") -> int:
    """Returns a TCP port that was free on `host` a moment ago, never the same one twice in this process.

    Picked below the OS's ephemeral range (/proc/sys/net/ipv4/ip_local_port_range), where outgoing connections take
    their local ports: a port from that range can be taken by any new connection before the service binds it.
    """
    low = _ephemeral_range_start()
    for _ in range(1000):
        port = random.randrange(_LOWEST_PORT, low) if low > _LOWEST_PORT else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise OSError(f"no free TCP port found on {host}")


def _ephemeral_range_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0  # unknown: let the OS pick


def health_status(address: str, service: str = "", timeout_s: float = 1.0) -> int | None:
    """Returns the `grpc.health.v1` status of `service` at `address`, or None if the server does not answer."""
    with grpc.insecure_channel(address) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError:
            return None
    return int(response.status)


def http_ok(url: str, timeout_s: float = 1.0) -> bool:
    """Whether GET `url` answers 2xx (False on any error, refused connection included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError):
        return False


class ServiceProcess:
    """One service running as a child process (`python -m <module>`), configured by environment variables.

    Args:
        name: A label for logs and errors.
        module: The module to run, for example "services.worker".
        address: host:port the service will listen on (the caller picks the port, see `free_port`).
        env: Extra environment variables (the service's settings).
        log_path: Where the child's stdout and stderr go; None inherits the parent's.
    """

    def __init__(
        self, name: str, module: str, address: str, env: Mapping[str, str], log_path: Path | None = None
    ) -> None:
        self.name = name
        self.module = module
        self.address = address
        self.log_path = log_path
        self._env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        """Starts the process in its own process group (signals to the group reach its engine children; the terminal's
        Ctrl-C does not), but in this session: Linux's autogroup scheduler (``sched_autogroup_enabled``) gives each
        session its own group, and a vLLM executor that busy-polls with ``sched_yield`` in one group kept another
        worker's engine off the shared core for its whole 1 s spin (the local mesh's TTFT went from ~12 ms to ~1 s
        whenever a request followed one on the other pair)."""
        output = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - lives as long as the child
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env=self._env,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            process_group=0,
        )
        return self

    def wait_until_serving(self, timeout_s: float, progress: Callable[[float], None] | None = None,
                           progress_every_s: float = 15.0, ready: Callable[[], bool] | None = None) -> None:
        """Blocks until health reports SERVING (or `ready()` is true, for a service without gRPC health); calls
        `progress(elapsed_s)` every `progress_every_s` meanwhile.

        Raises:
            RuntimeError: the process exited, or it was not SERVING within `timeout_s` (the log tail is included).
        """
        started = time.monotonic()
        deadline = started + timeout_s
        next_progress = started + progress_every_s
        while time.monotonic() < deadline:
            if progress is not None and time.monotonic() >= next_progress:
                progress(time.monotonic() - started)
                next_progress += progress_every_s
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.exit_code()}:\n{self.log_tail()}")
            if ready() if ready is not None else health_status(self.address) == health_pb2.HealthCheckResponse.SERVING:
                return
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not SERVING at {self.address} after {timeout_s:.0f} s:\n{self.log_tail()}")

    def exit_code(self) -> int | None:
        """The exit code, or None while running."""
        return None if self.process is None else self.process.poll()

    def send_signal(self, sig: int) -> None:
        """Sends `sig` to the service's main process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILLs the whole process group (the service and any engine processes it spawned)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL of the process group after `timeout_s`; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        try:  # engine children left behind by a crash
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the child's log, or "" when it logs to the parent."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
