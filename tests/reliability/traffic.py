"""Background traffic for the fault scenarios: closed-loop clients running while the test breaks something."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from clients.messages import Requirements
from clients.sdk import AsyncQuantmeshClient
from tests.fixtures.waiting import await_until
from tests.reliability.accounting import RequestOutcome, run_generate

PROMPT = "Summarise in one line: the quarterly report shows revenue up and costs flat."


async def traffic_during(client: AsyncQuantmeshClient, requirements: Requirements, *, clients: int,
                         duration_s: float, fault_at_s: float, fault: Callable[[], Awaitable[None]],
                         prompt: str = PROMPT) -> list[RequestOutcome]:
    """Runs `clients` closed-loop callers for `duration_s`, calling `fault()` at `fault_at_s`; every outcome."""
    outcomes: list[RequestOutcome] = []
    end = time.monotonic() + duration_s

    async def caller() -> None:
        while time.monotonic() < end:
            outcome = await run_generate(client, prompt, requirements)
            outcomes.append(outcome)
            if not outcome.ok:  # deliberate: a closed-loop caller backs off as the hint says
                await asyncio.sleep(outcome.retry_after_s or 0.05)

    async def inject() -> None:
        await asyncio.sleep(fault_at_s)  # deliberate: the fault lands this far into the traffic
        await fault()

    await asyncio.gather(inject(), *(caller() for _ in range(clients)))
    return outcomes


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float, interval_s: float = 0.2) -> bool:
    """Polls `predicate` until it is true (True) or `timeout_s` passes (False: the scenarios record
    recovery as a figure before they assert it)."""
    try:
        return bool(await await_until(predicate, timeout_s, interval_s))
    except AssertionError:
        return False


async def reconnected(client: AsyncQuantmeshClient, requirements: Requirements,
                      timeout_s: float = 15.0) -> tuple[list[RequestOutcome], float]:
    """Calls through the same client until one succeeds (its channel reconnects after its own backoff) or
    `timeout_s` passes; returns every outcome and the seconds it took."""
    started = time.monotonic()
    outcomes: list[RequestOutcome] = []
    while time.monotonic() - started < timeout_s:
        outcomes.append(await run_generate(client, PROMPT, requirements))
        if outcomes[-1].ok:
            break
        await asyncio.sleep(0.2)  # the interval of this poll (deadline above); every attempt is an outcome
    return outcomes, time.monotonic() - started
