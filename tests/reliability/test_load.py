"""Load: 3x the mesh's measured capacity for a bounded time, against the real local mesh (synthetic workers).

1. Capacity is measured first, on this machine now: closed-loop clients (each sends its next request when the last
   one ends, or after the retry-after hint when refused) for `CALIBRATION_S`; capacity = completed requests / s.
2. Then open-loop arrivals at 3x that rate for `LOAD_S` (60 s with QUANTMESH_RELIABILITY_LONG=1).
Checks: admitted requests (those that got a routing decision) meet their budget (<= 1% may miss it on this shared
2-core machine, and none may hang); the rest are refused with RESOURCE_EXHAUSTED quickly and with a retry-after hint;
goodput under overload stays near capacity (no collapse); no process dies; no engine request is left running;
RSS of every service returns near its baseline (measured after the calibration warmed it up).
Writes load.json into the session's results directory (`tests.fixtures.results`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from clients.messages import Requirements
from clients.sdk import AsyncQuantmeshClient
from core.vocabulary import RoutingMode
from tests.fixtures.reliability import LocalMesh, environment_flag
from tests.fixtures.waiting import await_until
from tests.reliability.accounting import RequestOutcome, ScenarioResult, percentile, run_generate
from tests.reliability.meshes import synthetic_pair

LONG = environment_flag("QUANTMESH_RELIABILITY_LONG")
BUDGET_MS = 800
# Interactive mode, as when the bounds below were set: its latency term spreads the load over both pairs. Under the
# cheapest default every request goes to the cheaper pair until it is predicted late, and the refusal p99 came out
# at 251 ms against the 250 ms bound in one of eight runs (open work, see the real-pairs closing note).
REQUIREMENTS = Requirements(max_output_tokens=16, latency_budget_ms=BUDGET_MS, mode=RoutingMode.INTERACTIVE)
PROMPT = "Classify the sentiment of this review: the delivery was late again and the box was damaged."
CALIBRATION_S = 4.0
CALIBRATION_CLIENTS = 48
LOAD_S = 60.0 if LONG else 10.0
OVERLOAD_FACTOR = 3.0
MAX_BUDGET_MISS_SHARE = 0.01
MAX_REJECT_P99_S = 0.25  # "rejected fast": well within the 800 ms budget
MIN_GOODPUT_SHARE = 0.6  # goodput under 3x overload, relative to the measured capacity
RSS_SLACK_BYTES = 24 * 2**20
RSS_SLACK_SHARE = 0.15
RSS_SETTLE_S = 10.0  # the most the services' RSS may take to come back near the baseline after the load
SETTLE_S = 10.0  # the most the workers may take to end the calibration's engine requests


@pytest.fixture(scope="module")
async def mesh(tmp_path_factory: pytest.TempPathFactory):
    async with LocalMesh(tmp_path_factory.mktemp("load-mesh"), synthetic_pair()) as running:
        yield running


def rss_limit(baseline_bytes: int) -> float:
    """The most RSS a service may hold after the load: its baseline plus the slack."""
    return baseline_bytes * (1 + RSS_SLACK_SHARE) + RSS_SLACK_BYTES


def rss_near(mesh: LocalMesh, baseline: dict[str, int]) -> dict[str, int] | None:
    """Every service's RSS now, when each is within `rss_limit` of its baseline; None otherwise."""
    rss = mesh.rss()
    return rss if all(rss[name] <= rss_limit(before) for name, before in baseline.items()) else None


async def workers_idle(mesh: LocalMesh) -> bool:
    """No engine request running or waiting on any live worker (their own GetLoad)."""
    return await mesh.orphaned_engine_requests(settle_timeout_s=0) == 0


async def closed_loop(client: AsyncQuantmeshClient, clients: int, duration_s: float) -> list[RequestOutcome]:
    outcomes: list[RequestOutcome] = []
    end = time.monotonic() + duration_s

    async def loop() -> None:
        while time.monotonic() < end:
            outcome = await run_generate(client, PROMPT, REQUIREMENTS)
            outcomes.append(outcome)
            if outcome.status == "RESOURCE_EXHAUSTED":  # deliberate: a closed-loop caller honours the hint
                await asyncio.sleep(outcome.retry_after_s or 0.05)

    await asyncio.gather(*(loop() for _ in range(clients)))
    return outcomes


async def open_loop(client: AsyncQuantmeshClient, rate_per_s: float, duration_s: float) -> list[RequestOutcome]:
    """Requests at evenly spaced arrival times, whatever the mesh answers (open loop: no back-pressure)."""
    tasks: list[asyncio.Task[RequestOutcome]] = []
    start = time.monotonic()
    for index in range(int(rate_per_s * duration_s)):
        delay = start + index / rate_per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # deliberate: the open loop's pacing (the next arrival time)
        tasks.append(asyncio.create_task(run_generate(client, PROMPT, REQUIREMENTS)))
    return list(await asyncio.gather(*tasks))


async def test_three_times_capacity_is_shed_not_collapsed(mesh: LocalMesh) -> None:
    async with AsyncQuantmeshClient(mesh.router_address) as client:
        warm_up = await closed_loop(client, 4, 1.0)
        assert all(outcome.ok for outcome in warm_up), {o.status for o in warm_up}
        calibration = await closed_loop(client, CALIBRATION_CLIENTS, CALIBRATION_S)
        completed = sum(outcome.ok for outcome in calibration)
        capacity_rps = completed / CALIBRATION_S
        assert capacity_rps > 5, f"the mesh completed only {completed} requests in {CALIBRATION_S} s"
        await await_until(lambda: workers_idle(mesh), SETTLE_S, interval_s=0.1,
                          message="the calibration's engine requests still run")
        baseline_rss = mesh.rss()

        rate = OVERLOAD_FACTOR * capacity_rps
        load_started = time.monotonic()
        outcomes = await open_loop(client, rate, LOAD_S)
        load_s = time.monotonic() - load_started

    result = ScenarioResult("load")
    result.record_all(outcomes)
    result.orphaned_engine_requests = await mesh.orphaned_engine_requests()
    settled = None
    with contextlib.suppress(AssertionError):  # not back within RSS_SETTLE_S: the RSS assertion below says how far
        settled = await await_until(lambda: rss_near(mesh, baseline_rss), RSS_SETTLE_S, interval_s=0.2)
    after_rss = settled or mesh.rss()
    dead = mesh.dead_processes()

    admitted = [outcome for outcome in outcomes if outcome.admitted]
    succeeded = [outcome for outcome in outcomes if outcome.ok]
    missed = [outcome for outcome in admitted if not outcome.ok]
    refused = [outcome for outcome in outcomes if outcome.status == "RESOURCE_EXHAUSTED"]
    refused_latency = [outcome.latency_s for outcome in refused]
    served_latency_ms = [outcome.latency_s * 1000 for outcome in succeeded]
    result.figures = {
        "budget_ms": BUDGET_MS,
        "capacity_rps": round(capacity_rps, 1),
        "offered_rps": round(rate, 1),
        "offered_over_capacity": OVERLOAD_FACTOR,
        "load_s": round(load_s, 1),
        "goodput_rps": round(len(succeeded) / load_s, 1),
        "goodput_over_capacity": round(len(succeeded) / load_s / capacity_rps, 2),
        "admitted": len(admitted),
        "admitted_missing_budget": len(missed),
        "served_e2e_p50_ms": round(percentile(served_latency_ms, 50), 1),
        "served_e2e_p99_ms": round(percentile(served_latency_ms, 99), 1),
        "rejected_p50_ms": round(percentile(refused_latency, 50) * 1000, 1),
        "rejected_p99_ms": round(percentile(refused_latency, 99) * 1000, 1),
        "rejected_with_retry_after": sum(outcome.retry_after_s is not None for outcome in refused),
        "rss_baseline_mib": {name: round(value / 2**20, 1) for name, value in baseline_rss.items()},
        "rss_after_mib": {name: round(value / 2**20, 1) for name, value in after_rss.items()},
        "dead_processes": dead,
    }
    result.write()

    result.assert_clean()
    assert not dead, f"processes died under load: {dead}"
    assert refused, "3x capacity was offered but nothing was refused: admission control did not act"
    assert all(outcome.retry_after_s is not None and outcome.retry_after_s > 0 for outcome in refused)
    assert percentile(refused_latency, 99) <= MAX_REJECT_P99_S, result.figures
    assert len(missed) <= MAX_BUDGET_MISS_SHARE * len(admitted), (
        f"{len(missed)} of {len(admitted)} admitted requests missed their budget: "
        f"{sorted({o.status for o in missed})}")
    assert all(outcome.latency_s * 1000 <= BUDGET_MS * 1.05 for outcome in succeeded)
    assert len(succeeded) / load_s >= MIN_GOODPUT_SHARE * capacity_rps, result.figures
    unexpected = set(result.rejected) - {"RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"}
    assert not unexpected, result.rejected
    for name, before in baseline_rss.items():
        assert after_rss[name] <= rss_limit(before), (
            f"{name}: RSS {after_rss[name] / 2**20:.0f} MiB after the load, {before / 2**20:.0f} MiB before")
