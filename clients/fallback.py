"""The SDK's static fallback: when the router cannot answer, a Generate goes straight to one configured worker.

The design's rule (docs/architecture.md, "Deadlines, retries, failure"): "if the router service fails, the client
falls back to a static config pointing to the most stable model". A client given a `StaticFallback` sends every
Generate to the router first. Only when that call fails with UNAVAILABLE (the router is unreachable, or has no
healthy pair) before the first token does the same request go to the fallback worker's
`InferenceWorkerService.Generate`, with what is left of the deadline:

- never after a token has arrived (the text would be duplicated), and never for an error that is the caller's
  (INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ...): those are
  raised as they are;
- the stream says so: `served_by_fallback` is True, the summary's `served_by` is the fallback pair, and when the
  router sent no decision the stream's decision is a synthesized one (outcome FALLBACK, no candidates, the reason
  naming the router's error); the worker knows no prices, so both costs are 0;
- `quantmesh_sdk_fallback_requests_total{model, quantization}` counts the requests served so (prometheus-client,
  default registry); one warning is logged when an outage starts and one info line when the router answers again
  (logger `clients.fallback`), not one per request.

Every later request tries the router again, so traffic goes back to it as soon as it answers; the SDK's channels
reconnect within `channel.MAX_RECONNECT_BACKOFF_MS`.

Configuration: `StaticFallback(address, Pair(...))`, `StaticFallback.from_file(path)` (JSON: `{"address",
"model_id", "quantization"}`) or `StaticFallback.from_environment()` (`QUANTMESH_SDK_FALLBACK_ADDRESS`,
`_MODEL_ID`, `_QUANTIZATION`, or `QUANTMESH_SDK_FALLBACK_FILE`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from prometheus_client import Counter

from clients.messages import GenerationSummary, Pair, RouteDecision, TokenChunk, Usage
from core import vocabulary
from core.errors import QuantmeshError
from core.vocabulary import FinishReason, Quantization, RouteOutcome
from quantmesh.router.v1 import router_pb2
from quantmesh.worker.v1 import worker_pb2

log = logging.getLogger(__name__)

FALLBACK_REQUESTS = Counter("quantmesh_sdk_fallback_requests_total",
                            "Generate requests the SDK sent to its static fallback worker (router unavailable).",
                            ["model", "quantization"])
ENV_PREFIX = "QUANTMESH_SDK_FALLBACK_"


@dataclass(frozen=True)
class StaticFallback:
    """The worker a client falls back to, and the pair it serves (what the summary reports as `served_by`).

    Raises:
        ValueError: `address` is not host:port.
    """

    address: str
    pair: Pair

    def __post_init__(self) -> None:
        host, _, port = self.address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"fallback address: expected host:port, got {self.address!r}")

    @classmethod
    def from_file(cls, path: Path | str) -> StaticFallback:
        """Reads `{"address": "host:port", "model_id": "...", "quantization": "awq"}`.

        Raises:
            OSError: the file cannot be read.
            ValueError: it is not that JSON object (the message names the file and the field).
        """
        try:
            fields = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        return cls._from_fields(fields if isinstance(fields, dict) else {}, str(path))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> StaticFallback | None:
        """From `QUANTMESH_SDK_FALLBACK_FILE`, or the `_ADDRESS`, `_MODEL_ID` and `_QUANTIZATION` variables; None
        when none is set.

        Raises:
            ValueError: a variable is missing or invalid (named in the message).
        """
        environ = os.environ if environ is None else environ
        if environ.get(ENV_PREFIX + "FILE"):
            return cls.from_file(environ[ENV_PREFIX + "FILE"])
        fields = {name: environ.get(ENV_PREFIX + name.upper()) for name in ("address", "model_id", "quantization")}
        if not any(fields.values()):
            return None
        return cls._from_fields({k: v for k, v in fields.items() if v is not None}, "the environment")

    @classmethod
    def _from_fields(cls, fields: Mapping[str, object], where: str) -> StaticFallback:
        missing = [name for name in ("address", "model_id", "quantization") if not fields.get(name)]
        if missing:
            raise ValueError(f"{where}: fallback needs {', '.join(missing)}")
        known = {member.value: member for member in Quantization.known()}
        if fields["quantization"] not in known:
            raise ValueError(f"{where}: fallback quantization {fields['quantization']!r} is not one of "
                             f"{', '.join(sorted(known))}")
        return cls(str(fields["address"]), Pair(str(fields["model_id"]), known[str(fields["quantization"])]))


def applies(error: QuantmeshError, tokens_received: int) -> bool:
    """Whether a failed router Generate may go to the fallback: UNAVAILABLE, and no token received yet."""
    return error.code is grpc.StatusCode.UNAVAILABLE and tokens_received == 0


class OutageLog:
    """Logs an outage once when it starts and once when the router answers again (thread-safe: one per client)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None

    def router_failed(self, error: QuantmeshError, fallback: StaticFallback) -> None:
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        log.warning("router unavailable (%s): Generate requests go to the static fallback %s at %s until it "
                    "answers again", error, fallback.pair, fallback.address)

    def router_answered(self) -> None:
        with self._lock:
            if self._since is None:
                return
            outage_s, self._since = time.monotonic() - self._since, None
        log.info("router answers again after %.1f s: requests are routed again", outage_s)


class FallbackCall:
    """One request's way to the fallback worker: the worker request, its deadline, and its messages as SDK events.

    Args:
        fallback: The worker and its pair.
        outage: The client's outage log.
        request: The router request (its input, sampling and max_output_tokens go to the worker).
        timeout_s: The router call's deadline, in s from now (the worker call gets what is left of it).
    """

    def __init__(self, fallback: StaticFallback, outage: OutageLog, request: router_pb2.GenerateRequest,
                 timeout_s: float) -> None:
        self.fallback = fallback
        self.outage = outage
        self.budget_ms = timeout_s * 1000.0
        self.deadline = time.monotonic() + timeout_s
        self.request = worker_pb2.GenerateRequest(request_id=request.request_id, sampling=request.sampling,
                                                  max_output_tokens=request.requirements.max_output_tokens)
        if request.WhichOneof("input") == "chat":
            self.request.chat.CopyFrom(request.chat)
        else:
            self.request.prompt = request.prompt
        self._started = time.monotonic()
        self._first_token_at: float | None = None

    def worker_request(self) -> worker_pb2.GenerateRequest:
        """The request for the worker; from now on latencies are measured from this call."""
        self._started = time.monotonic()
        return self.request

    def timeout_s(self) -> float:
        """What is left of the caller's deadline, in s (at least 1 ms, so that an expired one fails as
        DEADLINE_EXCEEDED at the worker rather than as a local error)."""
        return max(0.001, self.deadline - time.monotonic())

    def decision(self, error: QuantmeshError) -> RouteDecision:
        """The decision of a request the router never decided: outcome FALLBACK, the fallback pair, no candidates."""
        return RouteDecision(request_id=self.request.request_id, outcome=RouteOutcome.FALLBACK,
                             chosen=self.fallback.pair, reason=f"router unavailable ({error.message}): served by "
                             f"the static fallback {self.fallback.pair} at {self.fallback.address}",
                             candidates=(), classification=None, classifier_degraded=False, profiles_version=0,
                             effective_budget_ms=self.budget_ms)

    def event(self, message: worker_pb2.GenerateResponse) -> TokenChunk | GenerationSummary:
        """A worker message as the stream's event; the completion becomes the summary (costs 0: no prices)."""
        now = time.monotonic()
        if message.HasField("chunk"):
            self._first_token_at = self._first_token_at or now
            return TokenChunk.from_proto(message.chunk)
        complete = message.complete
        FALLBACK_REQUESTS.labels(self.fallback.pair.model_id, self.fallback.pair.quantization.value).inc()
        return GenerationSummary(
            usage=Usage.from_proto(complete.usage),
            finish_reason=vocabulary.from_proto(FinishReason, complete.finish_reason),
            served_by=self.fallback.pair, ttft_ms=((self._first_token_at or now) - self._started) * 1000.0,
            e2e_latency_ms=(now - self._started) * 1000.0, estimated_cost_usd=0.0, actual_cost_usd=0.0, attempts=1)
