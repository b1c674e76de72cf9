"""The before/after comparison on real pairs: always the most accurate pair against routed, graded on held-out items.

Used by the main job (`quantmesh up --run-sample` with a `comparison` section, `make demo`) and by
`benchmarks/routing_real.py`, on a mesh that is up and has published measured profiles (`tools.mesh.profiling`).

1. The threshold: with `required_accuracy` None it is chosen on the profiling set only. Every profiling item is
   routed (the router's Route RPC: the live classifier and policy, cheapest mode, no generation) at each candidate
   threshold (0 and every expected accuracy a pair showed for a profiling item), each decision is scored by the
   answer its pair gave in the profiler's graded run (the profile report), and the cheapest threshold whose
   accuracy is within `tolerance` of the most accurate pair's on that set is kept. Held-out items play no part in
   the choice.
2. Two arms over the same held-out items, one after the other on the same mesh, `concurrency` in flight each:
   - all-best: every item straight to the most accurate pair's worker (greedy);
   - routed: every item through RouterService.Generate (cheapest mode, the threshold, a budget no pair misses).
   Every answer is graded against its reference (`tools.profiler.scoring`).
3. Figures per arm: accuracy with its 95% Wilson interval, cost (input tokens x the pair's input price + output
   tokens x its output price, from the profile) in total and per 1M tokens, e2e latency p50 / p99 at the client,
   output tokens/s, share of items per pair, accuracy per task; and the paired accuracy difference (routed -
   all-best over the same items) with a 95% normal interval.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients.messages import ChatMessage, Requirements, Sampling
from clients.sdk import AsyncQuantmeshClient
from core.errors import QuantmeshError
from core.profiles import PairProfile, ProfileDocument, wilson_interval
from core.vocabulary import ChatRole, RouteOutcome, RoutingMode
from tools.profiler.driver import WorkerDriver, WorkerError
from tools.profiler.eval_set import EvalItem
from tools.profiler.scoring import score

NO_BUDGET_MS = 600_000  # the comparison is about accuracy and cost: no pair is refused for latency
Z_95 = 1.959963984540054
ALL_BEST, ROUTED = "all_best", "routed"


@dataclass(frozen=True)
class Answer:
    """One graded answer of one arm (`pair` is "" when the request failed, with `error` saying why)."""

    arm: str
    item_id: str
    tier: str
    intent: str
    pair: str
    correct: bool
    extracted: str | None
    reason: str
    output: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    e2e_latency_ms: float
    error: str = ""


@dataclass(frozen=True)
class Comparison:
    """Both arms' answers and figures, the threshold used and how it was chosen."""

    best_pair: str
    required_accuracy: float
    threshold_replay: list[dict]
    answers: dict[str, list[Answer]]
    figures: dict[str, dict]
    accuracy_difference: dict
    wall_s: dict[str, float] = field(default_factory=dict)

    def headline(self) -> dict[str, float]:
        """The figures named by the real-pairs issue (benchmarks/results/routing_real.json)."""
        best, routed = self.figures[ALL_BEST], self.figures[ROUTED]
        return {
            "accuracy_all_best": best["accuracy"], "accuracy_routed": routed["accuracy"],
            "cost_per_1m_all_best_usd": best["cost_per_1m_usd"], "cost_per_1m_routed_usd": routed["cost_per_1m_usd"],
            "cost_ratio_routed_to_all_best": routed["cost_usd"] / best["cost_usd"] if best["cost_usd"] else 0.0,
            "p99_ms_all_best": best["p99_ms"], "p99_ms_routed": routed["p99_ms"],
            "n_prompts": len(self.answers[ROUTED]),
        }


def cost_usd(pair: PairProfile, prompt_tokens: int, completion_tokens: int) -> float:
    """USD of one answer at the pair's measured input and output prices."""
    return (prompt_tokens * pair.input_cost_per_1m_tokens_usd()
            + completion_tokens * pair.cost_per_1m_tokens_usd) / 1e6


def overall_accuracy(pair: PairProfile) -> float:
    """The pair's graded accuracy over the whole profiling set (from graded_by_tier)."""
    graded = pair.graded_by_tier.values()
    return sum(slice_.correct for slice_ in graded) / sum(slice_.total for slice_ in graded)


def most_accurate(document: ProfileDocument) -> PairProfile:
    """The pair with the best graded accuracy over the profiling set (ties: the cheaper).

    Raises:
        ValueError: a pair carries no graded counts (a profile written by hand).
    """
    ungraded = [pair.name for pair in document.pairs if not pair.graded_by_tier]
    if ungraded:
        raise ValueError(f"pairs without graded counts (not measured by the profiler): {', '.join(ungraded)}")
    return max(document.pairs, key=lambda pair: (overall_accuracy(pair), -pair.cost_per_1m_tokens_usd))


def _messages(item: EvalItem) -> list[ChatMessage] | str:
    if item.messages is None:
        return item.prompt or ""
    return [ChatMessage(ChatRole(turn.role), turn.content) for turn in item.messages]


def _requirements(item: EvalItem, required_accuracy: float) -> Requirements:
    return Requirements(max_output_tokens=item.max_output_tokens or 64, latency_budget_ms=NO_BUDGET_MS,
                        required_accuracy=required_accuracy, mode=RoutingMode.CHEAPEST)


def task_of(item_id: str) -> str:
    """The task of an eval item, from its id ("heldout-gsm8k-7" -> "gsm8k")."""
    return item_id.split("-")[1]


async def _replay(client: AsyncQuantmeshClient, items: Sequence[EvalItem], threshold: float,
                  answers: dict[str, dict[str, dict]], profiles: dict[str, PairProfile]) -> dict:
    decisions = await asyncio.gather(*(client.route(_messages(item), _requirements(item, threshold))
                                       for item in items))
    correct = tokens = fallbacks = 0
    spent = 0.0
    for item, decision in zip(items, decisions, strict=True):
        if decision.chosen is None:
            raise ValueError(f"{item.id}: the router rejected it ({decision.reason})")
        name = f"{decision.chosen.model_id}/{decision.chosen.quantization.value}"
        answer = answers[name][item.id]
        prompt_tokens = answer["prompt_tokens"] or 0
        correct += answer["correct"]
        spent += cost_usd(profiles[name], prompt_tokens, answer["completion_tokens"])
        tokens += prompt_tokens + answer["completion_tokens"]
        fallbacks += decision.outcome is RouteOutcome.FALLBACK
    return {"required_accuracy": threshold, "accuracy": correct / len(items),
            "cost_per_1m_usd": spent / tokens * 1e6 if tokens else 0.0, "fallbacks": fallbacks}


async def choose_threshold(client: AsyncQuantmeshClient, document: ProfileDocument, report: dict,
                           profile_items: Sequence[EvalItem], tolerance: float) -> tuple[float, list[dict]]:
    """(threshold, replay rows) as described in the module docstring.

    Raises:
        ValueError: the report lacks a pair's graded answers, or the router rejected a profiling item.
    """
    answers = {f"{pair['profile']['model_id']}/{pair['profile']['quantization']}":
               {item["id"]: item for item in pair["items"]} for pair in report["pairs"]}
    missing = [pair.name for pair in document.pairs if pair.name not in answers]
    if missing:
        raise ValueError(f"the profile report has no graded answers of {', '.join(missing)}")
    profiles = {pair.name: pair for pair in document.pairs}
    best = most_accurate(document)
    best_accuracy = statistics.fmean(answers[best.name][item.id]["correct"] for item in profile_items)
    first = await asyncio.gather(*(client.route(_messages(item), _requirements(item, 0.0)) for item in profile_items))
    thresholds = sorted({0.0} | {candidate.expected_accuracy for decision in first for candidate in decision.candidates})
    replay = [await _replay(client, profile_items, threshold, answers, profiles) for threshold in thresholds]
    feasible = [row for row in replay if row["accuracy"] >= best_accuracy - tolerance - 1e-12]
    return min(feasible, key=lambda row: (row["cost_per_1m_usd"], -row["accuracy"]))["required_accuracy"], replay


async def _run_limited(items: Sequence[EvalItem], concurrency: int, one: Callable[[EvalItem], Awaitable[Answer]],
                       progress: Callable[[str, int, int], None], label: str) -> list[Answer]:
    slots = asyncio.Semaphore(concurrency)
    done = 0

    async def guarded(item: EvalItem) -> Answer:
        nonlocal done
        async with slots:
            answer = await one(item)
        done += 1
        progress(label, done, len(items))
        return answer

    return list(await asyncio.gather(*(guarded(item) for item in items)))


async def run_all_best(items: Sequence[EvalItem], best: PairProfile, address: str, concurrency: int,
                       progress: Callable[[str, int, int], None]) -> list[Answer]:
    """Every item on the most accurate pair's worker, directly (greedy)."""
    driver = WorkerDriver(address, NO_BUDGET_MS / 1000)

    async def one(item: EvalItem) -> Answer:
        started = time.perf_counter()
        try:
            generation = await driver.generate(item, max_output_tokens=item.max_output_tokens or 64, stop=item.stop)
        except WorkerError as exc:
            return Answer(ALL_BEST, item.id, item.tier.value, item.intent.value, "", False, None, "worker error", "",
                          0, 0, 0.0, (time.perf_counter() - started) * 1000.0, str(exc))
        verdict = score(item, generation.text)
        trace = generation.trace
        return Answer(ALL_BEST, item.id, item.tier.value, item.intent.value, best.name, verdict.correct,
                      verdict.extracted, verdict.reason, generation.text, trace.prompt_tokens,
                      trace.completion_tokens, cost_usd(best, trace.prompt_tokens, trace.completion_tokens),
                      (time.perf_counter() - started) * 1000.0)

    try:
        return await _run_limited(items, concurrency, one, progress, "all-best")
    finally:
        await driver.close()


async def run_routed(items: Sequence[EvalItem], client: AsyncQuantmeshClient, required_accuracy: float,
                     concurrency: int, progress: Callable[[str, int, int], None]) -> list[Answer]:
    """Every item through the router: cheapest mode, `required_accuracy` for its tier and intent."""

    async def one(item: EvalItem) -> Answer:
        started = time.perf_counter()
        try:
            completion = await client.complete(_messages(item), _requirements(item, required_accuracy),
                                               sampling=Sampling(temperature=0.0, stop=item.stop))
        except QuantmeshError as exc:
            return Answer(ROUTED, item.id, item.tier.value, item.intent.value, "", False, None, "router error", "",
                          0, 0, 0.0, (time.perf_counter() - started) * 1000.0, f"{exc.code.name}: {exc.message}")
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        summary = completion.summary
        served = summary.served_by or completion.decision.chosen
        verdict = score(item, completion.text)
        return Answer(ROUTED, item.id, item.tier.value, item.intent.value,
                      f"{served.model_id}/{served.quantization.value}" if served else "", verdict.correct,
                      verdict.extracted, verdict.reason, completion.text, summary.usage.prompt_tokens,
                      summary.usage.completion_tokens, summary.actual_cost_usd, elapsed_ms)

    return await _run_limited(items, concurrency, one, progress, "routed")


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def arm_figures(answers: Sequence[Answer], wall_s: float) -> dict:
    """The figures of one arm (module docstring, step 3)."""
    correct = sum(answer.correct for answer in answers)
    low, high = wilson_interval(correct, len(answers))
    tokens = sum(answer.prompt_tokens + answer.completion_tokens for answer in answers)
    spent = sum(answer.cost_usd for answer in answers)
    latencies = [answer.e2e_latency_ms for answer in answers]
    tasks: dict[str, list[Answer]] = {}
    for answer in answers:
        tasks.setdefault(task_of(answer.item_id), []).append(answer)
    return {
        "accuracy": correct / len(answers), "correct": correct, "n": len(answers), "ci95": [low, high],
        "cost_usd": spent, "cost_per_1m_usd": spent / tokens * 1e6 if tokens else 0.0,
        "p50_ms": statistics.median(latencies), "p99_ms": _percentile(latencies, 99),
        "output_tokens_per_s": sum(answer.completion_tokens for answer in answers) / wall_s,
        "wall_s": wall_s, "errors": sum(1 for answer in answers if answer.error),
        "share_by_pair": {pair or "(failed)": count / len(answers)
                          for pair, count in Counter(answer.pair for answer in answers).most_common()},
        "accuracy_by_task": {task: sum(a.correct for a in group) / len(group) for task, group in tasks.items()},
    }


def paired_difference(routed: Sequence[Answer], best: Sequence[Answer]) -> dict:
    """routed - all-best accuracy over the same items, with a 95% normal interval of the paired mean."""
    by_id = {answer.item_id: answer for answer in best}
    differences = [int(answer.correct) - int(by_id[answer.item_id].correct) for answer in routed]
    mean = statistics.fmean(differences)
    half = Z_95 * statistics.stdev(differences) / math.sqrt(len(differences)) if len(differences) > 1 else 0.0
    return {"difference": mean, "ci95": [mean - half, mean + half]}


async def compare(router_address: str, best_address: str, document: ProfileDocument, report: dict,
                  profile_items: Sequence[EvalItem], heldout: Sequence[EvalItem], *, concurrency: int,
                  tolerance: float, required_accuracy: float | None,
                  progress: Callable[[str, int, int], None] = lambda label, done, total: None,
                  log: Callable[[str], None] = print) -> Comparison:
    """Runs the comparison (module docstring); `required_accuracy` None chooses it on the profiling set.

    Raises:
        ValueError: the profiles carry no graded counts, or the report lacks a pair's answers.
        QuantmeshError: the router failed a Route call while choosing the threshold.
    """
    best = most_accurate(document)
    async with AsyncQuantmeshClient(router_address) as client:
        replay: list[dict] = []
        if required_accuracy is None:
            log(f"choosing the accuracy threshold on the {len(profile_items)} profiling items (Route dry runs)")
            required_accuracy, replay = await choose_threshold(client, document, report, profile_items, tolerance)
        log(f"most accurate pair {best.name}; the routed arm asks accuracy >= {required_accuracy:.3f}; "
            f"{len(heldout)} held-out items per arm")
        started = time.perf_counter()
        best_answers = await run_all_best(heldout, best, best_address, concurrency, progress)
        best_wall = time.perf_counter() - started
        started = time.perf_counter()
        routed_answers = await run_routed(heldout, client, required_accuracy, concurrency, progress)
        routed_wall = time.perf_counter() - started
    return Comparison(
        best_pair=best.name, required_accuracy=required_accuracy, threshold_replay=replay,
        answers={ALL_BEST: best_answers, ROUTED: routed_answers},
        figures={ALL_BEST: arm_figures(best_answers, best_wall), ROUTED: arm_figures(routed_answers, routed_wall)},
        accuracy_difference=paired_difference(routed_answers, best_answers),
        wall_s={ALL_BEST: best_wall, ROUTED: routed_wall},
    )


def answers_cost_per_1m_usd(pair: PairProfile, report: dict) -> float:
    """What the pair's graded answers on the profiling set cost per 1M tokens (input and output at its prices): the
    same measure as an arm's `cost_per_1m_usd`."""
    items = next(entry["items"] for entry in report["pairs"]
                 if (entry["profile"]["model_id"], entry["profile"]["quantization"]) == (pair.model_id,
                                                                                         pair.quantization.value))
    spent = sum(cost_usd(pair, item["prompt_tokens"] or 0, item["completion_tokens"]) for item in items)
    tokens = sum((item["prompt_tokens"] or 0) + item["completion_tokens"] for item in items)
    return spent / tokens * 1e6


def write_chart(document: ProfileDocument, report: dict, comparison: Comparison, path: Path) -> None:
    """PNG: each pair's accuracy and answer cost on the profiling set, and both arms on the held-out items."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.8))
    for pair in document.pairs:
        point = (answers_cost_per_1m_usd(pair, report), overall_accuracy(pair))
        axes.scatter(*point, color="tab:blue")
        axes.annotate(pair.name, point, fontsize=7, textcoords="offset points", xytext=(4, 3))
    for arm, colour in ((ALL_BEST, "tab:red"), (ROUTED, "tab:green")):
        figures = comparison.figures[arm]
        axes.errorbar(figures["cost_per_1m_usd"], figures["accuracy"], fmt="*", markersize=14, color=colour,
                      yerr=[[figures["accuracy"] - figures["ci95"][0]], [figures["ci95"][1] - figures["accuracy"]]],
                      label=f"{arm.replace('_', '-')} (held-out, n={figures['n']}, 95% CI)")
    axes.set_xlabel("USD per 1M tokens (input and output) of the answers given")
    axes.set_ylabel("accuracy against the references")
    axes.set_title("Real model-quantization pairs (dots: profiling set) and both arms (stars: held-out)", fontsize=10)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
