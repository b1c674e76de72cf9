"""gRPC handlers of `RouterService`: Route, Generate and ListPairs (the admin RPCs are `services.router.admin`).

Generate, step by step (docs/architecture.md "The routing decision", "Deadlines, retries, failure"):
1. Validate the request (INVALID_ARGUMENT naming the field); the effective budget is the smaller of
   `latency_budget_ms` and the caller's gRPC deadline.
2. Classify (the ClassifierService over gRPC, or its model in process: `classifiers`) with a short deadline; on any
   classifier error, the degraded rules answer and the decision is flagged `classifier_degraded`.
3. Decide (`policy.decide`). REJECTED: UNAVAILABLE (no healthy pair) or INVALID_ARGUMENT (context too long).
4. Call the chosen pair's least-loaded healthy replica with deadline = what is left of the budget minus
   `worker_deadline_margin_ms`; once its request is on its way, log the decision and send it to the caller (with
   the replica in `chosen_endpoint`); then relay chunks as they come. The request id (`x-request-id`) and the
   caller's W3C trace context (`traceparent`) travel on the worker call's metadata.
5. Before the first token is relayed, UNAVAILABLE or RESOURCE_EXHAUSTED from the worker moves to the next replica
   of the pair (least loaded first: `workers.PairReplicas.pods`), then to the next pair of the decision's retry
   order, after a jittered backoff, within the deadline and `retry_max_attempts`. After it, a failure ends the call
   with UNAVAILABLE: no token is sent twice or invented.
6. Last, the summary: the worker's usage, the estimated cost (routing time) and the actual cost (reported usage),
   sent as soon as the worker's completion message arrives (its trailing status is awaited off the caller's path).
A caller's cancellation cancels the worker call (its engine request is aborted there).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import NoReturn

import grpc
import structlog
from opentelemetry import propagate, trace

from core.classification import Classification
from core.errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from core.profiles import ProfileDocument
from core.requests import validate_router_request
from core.vocabulary import RouteOutcome
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from quantmesh.worker.v1 import worker_pb2
from services.common.limits import validate_prompt_size
from services.router import convert
from services.router.admission import RETRY_AFTER_KEY, check_admission
from services.router.classifiers import ClassificationFailed, QueryClassifier
from services.router.deadlines import Deadline, RetryPolicy, effective_budget_ms
from services.router.degraded_classification import classify_degraded
from services.router.policy import (
    CandidateScore,
    Decision,
    PolicyConfig,
    RejectedStatus,
    cost_usd,
    decide,
)
from services.router.profile_store import ActiveProfiles
from services.router.prometheus_metrics import GenerateRecord, RouterMetrics
from services.router.span_attributes import decision_attributes, summary_attributes
from services.router.workers import WorkerHandle, WorkerPool

DEFAULT_MAX_PROMPT_BYTES = 64 * 1024

log = structlog.get_logger(__name__)

RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
# Codes that say the worker itself is failing (counted by its breaker); the rest are the request's doing.
WORKER_FAILURE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})


@dataclass(frozen=True)
class _Routed:
    request_id: str
    text: str
    classification: Classification
    classifier_degraded: bool
    decision: Decision
    deadline: Deadline
    mode: str

    @property
    def tier(self) -> str:
        return self.classification.tier.value

    def decision_proto(self, endpoint: str) -> router_pb2.RouteDecision:
        """The decision as callers get it (Route's answer, Generate's first message), naming the worker (replica)
        of the chosen pair."""
        message = convert.decision_to_proto(self.decision, self.request_id, self.classification.to_proto(),
                                            self.classifier_degraded)
        message.chosen_endpoint = endpoint
        return message


@dataclass
class _Attempts:
    """What Generate's attempts on the decision's pairs have done so far."""

    count: int = 0
    decision_sent: bool = False
    tried: CandidateScore | None = None
    last_error: grpc.aio.AioRpcError | None = None


class RouterServicer(router_pb2_grpc.RouterServiceServicer):
    """Route and Generate.

    Args:
        profiles: The profiles in use (kept current by the follower).
        workers: The worker pool (live load, breakers, stubs).
        classifier: The ClassifierService or the embedded model (`classifiers`), or None to always use the degraded
            rules.
        classifier_timeout_s: Longest wait for a classification, s.
        policy_config: Policy tunables.
        retry_policy: Retry limits and backoff.
        worker_margin_ms: Subtracted from the remaining budget for the worker's deadline, ms.
        metrics: Where decisions, latencies and costs are recorded (Prometheus).
        record_prompt_text: Put the prompt text in the route_decision log line and the span (off: never).
    """

    def __init__(self, profiles: ActiveProfiles, workers: WorkerPool,
                 classifier: QueryClassifier | None, classifier_timeout_s: float,
                 policy_config: PolicyConfig, retry_policy: RetryPolicy, worker_margin_ms: float, *,
                 admission_control: bool = True, max_prompt_bytes: int = DEFAULT_MAX_PROMPT_BYTES,
                 metrics: RouterMetrics | None = None, record_prompt_text: bool = False) -> None:
        self._profiles = profiles
        self._workers = workers
        self._classifier = classifier
        self._classifier_timeout_s = classifier_timeout_s
        self._policy_config = policy_config
        self._retry = retry_policy
        self._margin_ms = worker_margin_ms
        self._rng = random.Random()
        self._admission_control = admission_control
        self._max_prompt_bytes = max_prompt_bytes
        self._metrics = metrics or RouterMetrics()
        self._record_prompt_text = record_prompt_text
        self._finishing: set[asyncio.Task[None]] = set()

    async def Route(self, request: router_pb2.RouteRequest,
                    context: grpc.aio.ServicerContext) -> router_pb2.RouteResponse:
        routed = await self._route(request, context)
        self._record_decision(routed)
        chosen = routed.decision.chosen
        pods = self._workers.replicas(chosen.pair.endpoint).pods(chosen.pair.key) if chosen is not None else []
        return router_pb2.RouteResponse(decision=routed.decision_proto(pods[0].endpoint if pods else ""))

    async def ListPairs(self, request: router_pb2.ListPairsRequest,
                        context: grpc.aio.ServicerContext) -> router_pb2.ListPairsResponse:
        loaded = self._profiles.current
        if loaded is None:
            raise FailedPreconditionError("no profiles loaded: publish a profile document or set a static profile file")
        states = self._workers.states(loaded.document)
        infos = []
        for pair in loaded.document.pairs:
            view = states.get(pair.key)
            infos.append(convert.pair_info(pair, serving=view is not None and view.healthy and view.circuit_allows))
        return router_pb2.ListPairsResponse(pairs=infos, profiles_version=loaded.document.version)

    async def Generate(self, request: router_pb2.GenerateRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[router_pb2.GenerateResponse]:
        received_at = time.monotonic()
        routed = await self._route(request, context)
        self._refuse_unless_admitted(routed)
        record = self._metrics.routed(routed.decision, routed.tier, routed.mode)
        worker_request = convert.worker_request(request, routed.request_id)
        metadata = _outgoing_metadata(context, routed.request_id)
        attempts = _Attempts()
        # The relay loop stays in this one generator: a nested generator per attempt costs every token a frame.
        for candidate, handle in self._candidates(routed, attempts, record):
            handle.breaker.on_request_start()
            handle.in_flight += 1
            call = handle.stub.Generate(worker_request, timeout=routed.deadline.worker_timeout_s(self._margin_ms),
                                        metadata=metadata)
            responses = aiter(call)
            relayed_tokens = 0
            first_token_at: float | None = None
            complete = None
            try:
                if not attempts.decision_sent:
                    attempts.decision_sent = True
                    # One loop turn first: the worker call's task sends its request before the decision is
                    # serialised and sent, since the first token waits on the worker, not on the decision.
                    await asyncio.sleep(0)
                    self._record_decision(routed)
                    yield router_pb2.GenerateResponse(decision=routed.decision_proto(handle.endpoint))
                async for response in responses:
                    if not response.HasField("chunk"):
                        # The worker's last message: the summary goes out now, not after its trailing OK status.
                        complete = response.complete
                        break
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                        record.first_token(candidate, first_token_at - received_at)
                    relayed_tokens += len(response.chunk.token_ids)
                    yield router_pb2.GenerateResponse(chunk=response.chunk)
                handle.breaker.record_success()
            except grpc.aio.AioRpcError as error:
                self._raise_unless_retryable(error, candidate, handle, routed, attempts.count, relayed_tokens,
                                             first_token_at is not None, record, received_at)
                attempts.last_error = error
                delay_ms = self._retry.next_backoff_ms(attempts.count, routed.deadline.remaining_ms(), self._rng)
                if delay_ms is None:
                    break
                record.retried(candidate, error.code())
                await asyncio.sleep(delay_ms / 1000.0)
                continue
            finally:
                handle.in_flight -= 1
                if complete is None:  # caller cancellation or a failure: abort the worker's request
                    call.cancel()
            if complete is None:
                raise UnavailableError(f"worker {candidate.pair.name} ended its stream without a completion message")
            summary = _summary(candidate, handle.endpoint, complete, attempts.count, received_at, first_token_at)
            try:
                yield router_pb2.GenerateResponse(summary=summary)
            finally:  # after the send: off the caller's critical path, and recorded even if the caller left
                self._completed(responses, candidate, summary, record)
            return
        self._raise_exhausted(routed, attempts, record, received_at)

    def _candidates(self, routed: _Routed, attempts: _Attempts,
                    record: GenerateRecord) -> Iterator[tuple[CandidateScore, WorkerHandle]]:
        """The workers to try: each replica of the chosen pair (least loaded first), then those of its retry order,
        skipping a retry on a replica that is unhealthy or whose breaker refuses traffic; counts each attempt and
        records a failover to another pair."""
        for candidate in (routed.decision.chosen, *routed.decision.retry_order):
            assert candidate is not None  # ROUTED / FALLBACK always choose
            for handle in self._workers.replicas(candidate.pair.endpoint).pods(candidate.pair.key):
                if attempts.count and not (handle.breaker.allows_request()
                                           and handle.state(candidate.pair.key).healthy):
                    continue
                attempts.count += 1
                if attempts.tried is not None and attempts.tried is not candidate:
                    record.failed_over(attempts.tried)
                attempts.tried = candidate
                yield candidate, handle

    def _completed(self, responses: AsyncIterator[worker_pb2.GenerateResponse], candidate: CandidateScore,
                   summary: router_pb2.GenerationSummary, record: GenerateRecord) -> None:
        """After the summary was sent: the worker call's trailing status read in the background, the metrics and
        the span's usage."""
        self._finish_in_background(responses, candidate.pair.name)
        record.completed(candidate, summary.e2e_latency_ms / 1000.0, summary.actual_cost_usd)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(summary_attributes(summary))

    def _refuse_unless_admitted(self, routed: _Routed) -> None:
        """Raises for a REJECTED decision (INVALID_ARGUMENT when the prompt fits no pair's context, UNAVAILABLE
        otherwise) and, with admission control, RESOURCE_EXHAUSTED when the chosen pair would not start in time."""
        decision = routed.decision
        refusal: Exception | None = None
        if decision.outcome is RouteOutcome.REJECTED:
            refusal = (InvalidArgumentError(f"prompt: {decision.reason}")
                       if decision.rejected_status is RejectedStatus.CONTEXT_TOO_LONG
                       else UnavailableError(decision.reason))
        elif self._admission_control:
            admission = check_admission(decision, self._policy_config.kv_cache_saturation_fraction)
            refusal = admission.error() if admission is not None else None
        if refusal is not None:
            self._record_decision(routed)
            self._metrics.rejected(routed.tier, routed.mode)
            raise refusal

    @staticmethod
    def _raise_unless_retryable(error: grpc.aio.AioRpcError, candidate: CandidateScore, handle: WorkerHandle,
                                routed: _Routed, attempt: int, relayed_tokens: int, streamed: bool,
                                record: GenerateRecord, received_at: float) -> None:
        """Counts a failed worker call on its breaker and raises what the caller gets, unless the failure is
        retryable on the next pair (UNAVAILABLE or RESOURCE_EXHAUSTED before the first token). After the first
        token it is UNAVAILABLE: a retry would send tokens twice."""
        code = error.code()
        if code in WORKER_FAILURE_CODES:
            handle.breaker.record_failure()
        else:
            handle.breaker.record_success()
        log.warning("worker_call_failed", request_id=routed.request_id, pair=candidate.pair.name,
                    code=code.name, relayed_tokens=relayed_tokens, attempt=attempt)
        if code is grpc.StatusCode.DEADLINE_EXCEEDED:
            record.deadline_exceeded(candidate, time.monotonic() - received_at)
            raise DeadlineExceededError(f"worker {candidate.pair.name} did not finish within the budget "
                                        f"({routed.decision.budget_ms:.0f} ms, {relayed_tokens} token(s) relayed)"
                                        ) from None
        if streamed:
            raise UnavailableError(f"worker {candidate.pair.name} failed after {relayed_tokens} token(s) were "
                                   f"relayed ({code.name}: {error.details()}); not retried to avoid "
                                   "duplicate tokens") from None
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            raise InvalidArgumentError(error.details() or "invalid request") from None
        if code not in RETRYABLE_CODES:
            raise UnavailableError(f"worker {candidate.pair.name} failed: {code.name}: {error.details()}") from None

    def _raise_exhausted(self, routed: _Routed, attempts: _Attempts, record: GenerateRecord,
                         received_at: float) -> NoReturn:
        """Every pair was tried or the budget ran out: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (every pair refused
        admission; the worker's retry hint is passed on) or UNAVAILABLE."""
        if routed.deadline.remaining_ms() <= self._margin_ms:
            if attempts.tried is not None:
                record.deadline_exceeded(attempts.tried, time.monotonic() - received_at)
            raise DeadlineExceededError(f"latency budget ({routed.decision.budget_ms:.0f} ms) ran out after "
                                        f"{attempts.count} attempt(s)")
        error = attempts.last_error
        detail = f"{error.code().name}: {error.details()}" if error else "no pair left to try"
        if error is not None and error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise ResourceExhaustedError(f"every pair tried refused admission after {attempts.count} attempt(s) "
                                         f"({detail})", trailing_metadata=_retry_after(error))
        raise UnavailableError(f"no pair could serve the request after {attempts.count} attempt(s) ({detail})")

    def _finish_in_background(self, responses: AsyncIterator[worker_pb2.GenerateResponse], pair_name: str) -> None:
        """Reads the rest of a worker call whose completion message has arrived (its trailing status) in a task, off
        the caller's path. Until then the task keeps the call referenced, since grpc cancels a call that is
        garbage-collected before its status (`grpc.aio.Call.__del__`), and a tracing interceptor's client span ends
        when the status arrives."""
        task = asyncio.create_task(_read_trailing_status(responses, pair_name))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _route(self, request: router_pb2.RouteRequest | router_pb2.GenerateRequest,
                     context: grpc.aio.ServicerContext) -> _Routed:
        """Validates the request (before anything else: a bad request is never classified or routed), classifies
        it and decides. Raises INVALID_ARGUMENT naming the bad field, or FAILED_PRECONDITION without profiles."""
        validate_router_request(request)
        request_id = request.request_id or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        text = convert.input_text(request)
        validate_prompt_size(text, self._max_prompt_bytes)
        loaded = self._profiles.current
        if loaded is None:
            raise FailedPreconditionError("no profiles loaded: publish a profile document or set a static profile file")
        document = _pinned(loaded.document, request.requirements)
        deadline = Deadline(effective_budget_ms(request.requirements.latency_budget_ms, context.time_remaining()))
        classification, degraded = await self._classify(text, request_id, deadline)
        if degraded:
            self._metrics.classifier_degraded()
        routing = convert.routing_request(request.requirements, deadline.budget_ms)
        decision = decide(routing, classification, document, self._workers.states(document), self._policy_config)
        return _Routed(request_id, text, classification, degraded, decision, deadline, routing.mode.value)

    def _record_decision(self, routed: _Routed) -> None:
        """Logs the decision (`route_decision`) and sets it on the current span. Generate calls this once the worker
        call is under way: none of it is on the first token's path."""
        decision, query = routed.decision, routed.classification
        prompt = {"prompt": routed.text} if self._record_prompt_text else {}
        log.info("route_decision", outcome=decision.outcome.value,
                 chosen=decision.chosen.pair.name if decision.chosen else None, tier=query.tier.value,
                 classifier_degraded=routed.classifier_degraded, profiles_version=decision.profiles_version,
                 budget_ms=round(decision.budget_ms, 1), **prompt)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(decision_attributes(decision, query, routed.mode, routed.request_id,
                                                    routed.classifier_degraded))
            if self._record_prompt_text:
                span.set_attribute("quantmesh.prompt", routed.text)

    async def _classify(self, text: str, request_id: str,
                        deadline: Deadline) -> tuple[Classification, bool]:
        """The classifier's answer, or the degraded rules' (flagged True) when it fails or would be too slow."""
        timeout_s = min(self._classifier_timeout_s, deadline.remaining_ms() / 1000.0)
        if self._classifier is not None and timeout_s > 0:
            try:
                return await self._classifier.classify(text, request_id, timeout_s), False
            except ClassificationFailed as error:
                log.warning("classifier_failed_using_degraded_rules", error=str(error))
        return classify_degraded(text), True


def _pinned(document: ProfileDocument, requirements: router_pb2.RoutingRequirements) -> ProfileDocument:
    """The document to decide from: the whole of it, or its pinned pair alone (NOT_FOUND naming the pairs there
    are when the document has no such pair)."""
    if not requirements.HasField("pinned_pair"):
        return document
    key = convert.pair_key(requirements.pinned_pair)
    pairs = [pair for pair in document.pairs if pair.key == key]
    if not pairs:
        known = ", ".join(pair.name for pair in document.pairs)
        raise NotFoundError(f"requirements.pinned_pair: no pair {key[0]}/{key[1].value} in profiles version "
                            f"{document.version} (pairs: {known})")
    return document.model_copy(update={"pairs": pairs})


async def _read_trailing_status(responses: AsyncIterator[worker_pb2.GenerateResponse], pair_name: str) -> None:
    """Drains a worker stream after its completion message; anything but a clean end is logged, not raised: the
    caller already has every token and the summary."""
    try:
        async for _ in responses:
            log.warning("worker_message_after_completion", pair=pair_name)
    except grpc.aio.AioRpcError as error:
        log.warning("worker_status_after_completion", pair=pair_name, code=error.code().name, details=error.details())


def _retry_after(error: grpc.aio.AioRpcError) -> tuple[tuple[str, str], ...]:
    """The worker's `retry-after-ms` hint, passed on to the caller (empty when it gave none)."""
    return tuple((key, str(value)) for key, value in (error.trailing_metadata() or ()) if key == RETRY_AFTER_KEY)[:1]


def _outgoing_metadata(context: grpc.aio.ServicerContext, request_id: str) -> tuple[tuple[str, str], ...]:
    """x-request-id plus the caller's W3C trace context (traceparent/tracestate), for the worker call."""
    incoming = {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=propagate.extract(incoming))
    return (("x-request-id", request_id), *sorted(carrier.items()))


def _summary(candidate: CandidateScore, endpoint: str, complete, attempts: int, received_at: float,
             first_token_at: float | None) -> router_pb2.GenerationSummary:
    finished_at = time.monotonic()
    return router_pb2.GenerationSummary(
        usage=complete.usage,
        finish_reason=complete.finish_reason,
        served_by=convert.pair_to_proto(candidate.pair),
        ttft_ms=((first_token_at or finished_at) - received_at) * 1000.0,
        e2e_latency_ms=(finished_at - received_at) * 1000.0,
        estimated_cost_usd=candidate.estimated_cost_usd,
        actual_cost_usd=cost_usd(candidate.pair, complete.usage.prompt_tokens, complete.usage.completion_tokens),
        attempts=attempts,
        served_by_endpoint=endpoint,
    )
