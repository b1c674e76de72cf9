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

import pytest

from tests.fixtures.mesh import abort_lines
from tests.fixtures.worker import engine_executors, paced_engine, suspended, worker_load
from tools.mesh.mesh import MeshEndpoints

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
        """The first match of `pattern` in the output from `start`, reading for up to `timeout_s` (AssertionError)."""
        deadline = time.monotonic() + timeout_s
        while not (found := self.search(pattern, start, wait_s=min(max(deadline - time.monotonic(), 0), 0.2))):
            assert time.monotonic() < deadline, f"no {pattern!r} in the output:\n{self.output[-3000:]}"
        return found

    def search(self, pattern: str, start: int = 0, wait_s: float = 0.0) -> re.Match[str] | None:
        """Reads what the child printed (waiting up to `wait_s` for it), then searches the output from `start`."""
        if (found := re.compile(pattern).search(self.output, start)) is None:
            ready, _, _ = select.select([self.fd], [], [], wait_s)
            if ready:
                try:
                    self.output += ANSI.sub("", os.read(self.fd, 65536).decode(errors="replace"))
                except OSError:  # the child exited
                    assert re.compile(pattern).search(self.output, start), self.output[-3000:]
                found = re.compile(pattern).search(self.output, start)
        return found

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


ATTEMPTS = 3  # turns tried until one is caught with its reply still being generated


def test_ctrl_c_in_a_chat_stream_cancels_it_and_the_engine_request_is_aborted(mesh: MeshEndpoints) -> None:
    # --accuracy 0.93: only tiny-llama-m qualifies (or is the fallback); --raw and greedy (the chat's default): a
    # base-model prompt that the tiny model continues up to max_output_tokens with no end-of-sequence.
    chat = Terminal([*CLI, "--router", mesh.router_address, "--max-output-tokens", "1900", "--budget-ms", "120000",
                     "--accuracy", "0.93", "chat", "--raw"])
    executors = [process for worker in mesh.workers for process in engine_executors(worker.address)]
    aborts_before = len(abort_lines(mesh))
    try:
        turn_start = chat.read_until(r"you> ", 30).end()
        for attempt in range(1, ATTEMPTS + 1):
            with suspended(executors):
                chat.write("The capital of Peru is\r")
                decision = chat.read_until(r"\[(\S+)/(\S+) (routed|fallback)\]", 30, start=turn_start)
                worker = next(w for w in mesh.workers if w.model_id == decision.group(1))
                # The engines make a step at a time until the first token is printed, so that the reply is still
                # being generated when the Ctrl-C lands (the engine does not wait for a slow reader, the terminal).
                with paced_engine(executors):
                    chat.read_until(r"\S", 30, start=decision.end())
                if still_running := worker_load(worker.address).running_requests == 1:
                    streamed_before = len(chat.output)
                    chat.write("\x03")  # Ctrl-C: the terminal sends SIGINT to the chat
                    chat.read_until(r"\[cancelled\]", 10, start=streamed_before)
            if still_running:
                break
            # A pacer slice stretched over the whole reply (a starved machine): a Ctrl-C now would land at the
            # prompt and exit the chat. The turn ends on its own and is repeated.
            assert attempt < ATTEMPTS, "every turn's reply was over before its first token was printed"
            turn_start = chat.read_until(r"you> ", 60, start=decision.end()).end()
        deadline = time.monotonic() + 10
        while (load := worker_load(worker.address)).running_requests or load.waiting_requests:
            assert time.monotonic() < deadline, f"engine request not aborted: {load}"
            time.sleep(0.1)
        turn_start = chat.read_until(r"you> ", 10, start=streamed_before).end()
        deadline = time.monotonic() + 10  # the abort is logged once the handler has returned
        while not (aborted := abort_lines(mesh)[aborts_before:]) and time.monotonic() < deadline:
            time.sleep(0.1)
        # The worker aborted the unfinished engine request because its caller cancelled; its engine's own counters
        # are back to zero (above).
        assert len(aborted) == 1 and aborted[0]["reason"] == "cancelled" and aborted[0]["tokens_sent"] < 1900, aborted

        chat.write("/route\r")
        chat.read_until(rf"chosen {re.escape(decision.group(1))}/", 10, start=turn_start)
        chat.read_until(r"candidates", 10, start=turn_start)
        chat.write("\x04")  # Ctrl-D at the prompt: exit
        assert chat.wait(15) == 0
    finally:
        try:
            os.kill(chat.pid, signal.SIGKILL)
            os.waitpid(chat.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(chat.fd)


def test_a_batch_file_is_served_by_the_mesh_s_batch_consumer(mesh: MeshEndpoints, tmp_path: Path) -> None:
    # `quantmesh up` starts one batch consumer; the requests are routed cost-first to the real vLLM workers.
    assert len(mesh.batch_consumers) == 1
    lines = [{"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions",
              "body": {"prompt": "The capital of France is", "max_tokens": 3, "temperature": 0}} for i in range(3)]
    batch_file = tmp_path / "batch.jsonl"
    batch_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out.jsonl"
    done = _run("--router", mesh.router_address, "--budget-ms", "20000", "batch", "submit", str(batch_file),
                "--out", str(out), timeout_s=120)
    assert done.returncode == 0, done.stderr
    written = [json.loads(line) for line in out.read_text().splitlines()]
    pairs = {f"{w.model_id}/{w.quantization}" for w in mesh.workers}
    assert [line["custom_id"] for line in written] == ["c0", "c1", "c2"]
    for line in written:
        body = line["response"]["body"]
        # The tiny models' golden answer, greedy, from a real engine.
        assert body["choices"][0]["message"]["content"].startswith(" Paris") and body["model"] in pairs
