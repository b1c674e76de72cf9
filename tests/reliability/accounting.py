"""What the reliability suite counts, from what clients received and what engines report (never assumed).

- `run_generate` makes one Generate call through the SDK and returns its `RequestOutcome`: the final status, whether
  the router admitted it (sent its decision), the tokens received with their `first_token_index`, the summary's
  completion token count, the client-side latency, and any retry-after hint.
- `check_tokens` compares the chunks' indices: an index below the next expected one is a duplicated token, above it a
  lost one; a completed stream must also hold exactly `usage.completion_tokens` tokens.
- `ScenarioResult` accumulates outcomes and writes `<scenario>.json` into the session's results directory
  (`tests.fixtures.results`: never the repository; the terminal summary says where) with `sent`,
  `succeeded`, `rejected` (by status), `lost` (requests that ended without success or a defined status, plus
  completed streams missing tokens), `duplicated_tokens`, `lost_tokens`, `orphaned_engine_requests`, and the
  scenario's own figures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clients.messages import GenerationSummary, Requirements, RouteDecision, Sampling, TokenChunk
from clients.sdk import AsyncQuantmeshClient
from core.errors import QuantmeshError, ResourceExhaustedError
from tests.fixtures.results import results_dir

# Statuses a caller can act on: the request ended cleanly, just not with tokens.
DEFINED_STATUSES = frozenset({
    "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "INVALID_ARGUMENT",
    "FAILED_PRECONDITION", "UNAUTHENTICATED", "PERMISSION_DENIED",
})
HANG_GRACE_S = 5.0  # a call still open this long after its deadline is a lost request


@dataclass
class RequestOutcome:
    status: str  # "OK" or the gRPC status name; "HUNG" when the call outlived its deadline + HANG_GRACE_S
    admitted: bool
    chunks: list[TokenChunk] = field(default_factory=list)
    summary: GenerationSummary | None = None
    decision: RouteDecision | None = None
    latency_s: float = 0.0
    retry_after_s: float | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "OK"

    @property
    def tokens(self) -> int:
        """Tokens received in chunks."""
        return sum(len(chunk.token_ids) for chunk in self.chunks)


def check_tokens(chunks: Sequence[TokenChunk], completion_tokens: int | None) -> tuple[int, int]:
    """(duplicated, lost) tokens of one stream; `completion_tokens` is None for a stream that did not complete."""
    duplicated = lost = 0
    next_index = 0
    for chunk in chunks:
        if chunk.first_token_index < next_index:
            duplicated += min(next_index - chunk.first_token_index, len(chunk.token_ids))
        elif chunk.first_token_index > next_index:
            lost += chunk.first_token_index - next_index
        next_index = max(next_index, chunk.first_token_index + len(chunk.token_ids))
    if completion_tokens is not None:
        lost += max(0, completion_tokens - next_index)
        duplicated += max(0, next_index - completion_tokens)
    return duplicated, lost


async def run_generate(client: AsyncQuantmeshClient, prompt: str, requirements: Requirements, *,
                       sampling: Sampling | None = None, cancel_after_tokens: int | None = None) -> RequestOutcome:
    """One Generate through the SDK, read to its end (or cancelled after `cancel_after_tokens` tokens)."""
    started = time.monotonic()
    stream = client.generate(prompt, requirements, sampling=sampling)
    outcome = RequestOutcome(status="OK", admitted=False)

    async def consume() -> None:
        received = 0
        async for event in stream:
            if isinstance(event, RouteDecision):
                outcome.admitted, outcome.decision = True, event
            elif isinstance(event, TokenChunk):
                outcome.chunks.append(event)
                received += len(event.token_ids)
                if cancel_after_tokens is not None and received >= cancel_after_tokens:
                    stream.cancel()
            else:
                outcome.summary = event

    try:
        await asyncio.wait_for(consume(), requirements.latency_budget_ms / 1000.0 + HANG_GRACE_S)
    except QuantmeshError as exc:
        outcome.status, outcome.message = exc.code.name, exc.message
        if isinstance(exc, ResourceExhaustedError):
            outcome.retry_after_s = exc.retry_after_s
    except TimeoutError:
        stream.cancel()
        outcome.status = "HUNG"
    if outcome.status == "OK" and outcome.summary is None:
        outcome.status, outcome.message = "NO_SUMMARY", "stream ended without a summary or a status"
    outcome.latency_s = time.monotonic() - started
    return outcome


@dataclass
class ScenarioResult:
    """Counts of one scenario (see the module docstring)."""

    scenario: str
    sent: int = 0
    succeeded: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicated_tokens: int = 0
    lost_tokens: int = 0
    orphaned_engine_requests: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    undefined: list[str] = field(default_factory=list)

    def record(self, outcome: RequestOutcome) -> None:
        self.sent += 1
        completed = outcome.ok
        duplicated, lost = check_tokens(outcome.chunks,
                                        outcome.summary.usage.completion_tokens if completed else None)
        self.duplicated_tokens += duplicated
        self.lost_tokens += lost
        if completed:
            self.succeeded += 1
            if lost:
                self.lost += 1
        elif outcome.status in DEFINED_STATUSES:
            self.rejected[outcome.status] += 1
        else:
            self.lost += 1
            self.undefined.append(f"{outcome.status}: {outcome.message}")

    def record_all(self, outcomes: Sequence[RequestOutcome]) -> None:
        for outcome in outcomes:
            self.record(outcome)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "sent": self.sent,
            "succeeded": self.succeeded,
            "rejected": dict(sorted(self.rejected.items())),
            "lost": self.lost,
            "duplicated_tokens": self.duplicated_tokens,
            "lost_tokens": self.lost_tokens,
            "orphaned_engine_requests": self.orphaned_engine_requests,
            "figures": self.figures,
            "undefined_outcomes": self.undefined[:20],
        }

    def write(self) -> Path:
        """Writes `<scenario>.json` into the session's results directory (`tests.fixtures.results`)."""
        path = results_dir() / f"{self.scenario}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return path

    def assert_clean(self) -> None:
        """Nothing lost, duplicated or orphaned; every request ended in success or a defined status."""
        assert self.lost == 0, f"{self.scenario}: {self.lost} lost request(s): {self.undefined[:5]}"
        assert self.duplicated_tokens == 0, f"{self.scenario}: {self.duplicated_tokens} duplicated token(s)"
        assert self.lost_tokens == 0, f"{self.scenario}: {self.lost_tokens} lost token(s)"
        assert self.orphaned_engine_requests == 0, (
            f"{self.scenario}: {self.orphaned_engine_requests} engine request(s) left running")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
