"""The `quantmesh` CLI as a user runs it (a child process; `chat` on a pseudo-terminal) against the real mesh."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clients.mesh import MeshEndpoints
from tests.fixtures.mesh import worker_load

pytestmark = pytest.mark.vllm

CLI = [sys.executable, "-m", "clients.cli"]
ENV = {**os.environ, "COLUMNS": "250", "TERM": "dumb", "NO_COLOR": "1"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _run(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=ENV, capture_output=True, text=True, timeout=timeout_s, check=False)


def test_route_prints_the_decision_and_every_rejection_reason(mesh: MeshEndpoints) -> None:
    done = _run("--router", mesh.router_address, "route", "The capital of France is", "--budget-ms", "20")
    assert done.returncode == 0, done.stderr
    assert "decision fallback" in done.stdout
    for worker in mesh.workers:
        row = next(line for line in done.stdout.splitlines() if f"{worker.model_id}/{worker.quantization}" in line
                   and "latency_budget:" in line)
        assert "> budget 20.0 ms" in row
    routed = _run("--router", mesh.router_address, "--budget-ms", "5000", "route", "The capital of France is")
    assert routed.returncode == 0 and "decision routed" in routed.stdout and "classification: tier" in routed.stdout


def test_profiles_get_lists_every_pair_with_its_endpoint(mesh: MeshEndpoints) -> None:
    done = _run("profiles", "get", "--router", mesh.router_address)
    assert done.returncode == 0, done.stderr
    assert re.search(r"profiles version \d+ from redis", done.stdout)
    for worker in mesh.workers:
        assert re.search(rf"{re.escape(worker.model_id)}/{worker.quantization}\s+│\s+{re.escape(worker.address)}",
                         done.stdout)
    raw = _run("profiles", "get", "--json", "--router", mesh.router_address)
    assert {p["endpoint"] for p in json.loads(raw.stdout)["pairs"]} == {w.address for w in mesh.workers}


def test_profiles_validate_reports_field_paths_and_exit_code(mesh: MeshEndpoints, tmp_path: Path) -> None:
    document = json.loads(_run("profiles", "get", "--json", "--router", mesh.router_address).stdout)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(document))
    del document["pairs"][1]["ttft_p50_ms"]
    bad.write_text(json.dumps(document))
    assert _run("profiles", "validate", str(good), "--router", mesh.router_address).returncode == 0
    invalid = _run("profiles", "validate", str(bad), "--router", mesh.router_address)
    assert invalid.returncode == 1 and "pairs.1.ttft_p50_ms: Field required" in invalid.stdout


def test_unreachable_router_is_a_typed_error_and_exit_code_1() -> None:
    done = _run("--router", "127.0.0.1:1", "route", "hello")
    assert done.returncode == 1 and done.stderr.startswith("UNAVAILABLE: ")


class Terminal:
    """A child process on a pseudo-terminal (so Ctrl-C is a real terminal interrupt), with its output so far."""

    def __init__(self, argv: list[str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once (no Python code of the parent runs here)
            os.execvpe(argv[0], argv, ENV)
        self.output = ""

    def read_until(self, pattern: str, timeout_s: float, start: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = re.compile(pattern).search(self.output, start)
            if found:
                return found
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no {pattern!r} in the output:\n{self.output[-3000:]}"
            ready, _, _ = select.select([self.fd], [], [], min(remaining, 0.2))
            if ready:
                try:
                    self.output += ANSI.sub("", os.read(self.fd, 65536).decode(errors="replace"))
                except OSError:  # the child exited
                    assert re.compile(pattern).search(self.output, start), self.output[-3000:]

    def write(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                os.read(self.fd, 65536)
            except OSError:
                pass
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("the chat did not exit")


ATTEMPTS = 3  # turns tried until one is cancelled with its engine request still running (see below)


def test_ctrl_c_in_a_chat_stream_cancels_it_and_the_engine_request_is_aborted(mesh: MeshEndpoints) -> None:
    # --accuracy 0.93: only tiny-llama-m qualifies (or is the fallback); --raw and greedy (the chat's default): a
    # base-model prompt that the tiny model continues up to max_output_tokens with no end-of-sequence.
    chat = Terminal([*CLI, "--router", mesh.router_address, "--max-output-tokens", "1900", "--budget-ms", "120000",
                     "--accuracy", "0.93", "chat", "--raw"])
    frozen: list[psutil.Process] = []
    try:
        turn_start = chat.read_until(r"you> ", 30).end()
        for attempt in range(1, ATTEMPTS + 1):
            aborts_before = len(abort_lines(mesh))
            chat.write("The capital of Peru is\r")
            decision = chat.read_until(r"\[(\S+)/(\S+) (routed|fallback)\]", 30, start=turn_start)
            worker = next(w for w in mesh.workers if w.model_id == decision.group(1))
            chat.read_until(r"\S", 30, start=decision.end())  # the first token is printed
            # The engine's model executor is frozen at once, so that the request is still running when the Ctrl-C
            # lands: the engine does not wait for a slow reader (here the terminal).
            frozen = engine_executors(worker.address)
            for process in frozen:
                process.suspend()
            streamed_before = len(chat.output)

            chat.write("\x03")  # Ctrl-C: the terminal sends SIGINT to the chat
            chat.read_until(r"\[cancelled\]", 10, start=streamed_before)
            for process in frozen:
                process.resume()
            deadline = time.monotonic() + 10
            while (load := worker_load(worker.address)).running_requests or load.waiting_requests:
                assert time.monotonic() < deadline, f"engine request not aborted: {load}"
                time.sleep(0.1)
            turn_start = chat.read_until(r"you> ", 10, start=streamed_before).end()
            deadline = time.monotonic() + 10  # the abort is logged once the handler has returned
            while not (aborted := abort_lines(mesh)[aborts_before:]) and time.monotonic() < deadline:
                time.sleep(0.1)
            if aborted or attempt == ATTEMPTS:
                break
            # A starved machine: the engine had produced all its tokens before the first one reached the terminal,
            # so there was nothing left to abort. The chat still cancelled cleanly; the turn is repeated.
        # The worker aborted an unfinished engine request because its caller cancelled; its engine's own counters
        # are back to zero (above).
        assert len(aborted) == 1 and aborted[0]["reason"] == "cancelled" and aborted[0]["tokens_sent"] < 1900, aborted

        chat.write("/route\r")
        chat.read_until(rf"chosen {re.escape(decision.group(1))}/", 10, start=turn_start)
        chat.read_until(r"candidates", 10, start=turn_start)
        chat.write("\x04")  # Ctrl-D at the prompt: exit
        assert chat.wait(15) == 0
    finally:
        for process in frozen:
            process.resume()
        try:
            os.kill(chat.pid, signal.SIGKILL)
            os.waitpid(chat.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(chat.fd)


def abort_lines(mesh: MeshEndpoints) -> list[dict]:
    """Every `engine_request_aborted` line the mesh's workers have logged so far."""
    return [json.loads(line) for worker in mesh.workers if worker.log_path is not None
            for line in worker.log_path.read_text().splitlines() if '"engine_request_aborted"' in line]


def engine_executors(worker_address: str) -> list[psutil.Process]:
    """The vLLM model-executor processes of the worker listening on `worker_address`."""
    port = int(worker_address.rsplit(":", 1)[1])
    pid = next(c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port)
    executors = [p for p in psutil.Process(pid).children(recursive=True) if p.name().startswith("VLLM::Worker")]
    assert executors, "no vLLM executor process under the worker"
    return executors
