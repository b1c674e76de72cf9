"""The mesh description `quantmesh up` reads (YAML), as strict pydantic models.

A mesh is Redis, one Classifier, one Router, one or more InferenceWorkers and (unless `gateway: null`) the HTTP
gateway. Each part is either started by
`quantmesh up` as a child process (the default) or, when it has an `address`, an already running service that is
only health-checked (for example GPU workers on other machines). Each worker serves one model-quantization pair;
its profile comes from the worker's `profile` block or from the `profiles.file` document (matched by model_id and
quantization), and its endpoint is always the worker's actual address.

Relative paths are resolved against the directory of the config file. Examples: `deploy/mesh/local.yaml` (two tiny
CPU workers) and `deploy/mesh/gpu-example.yaml` (real models on GPUs, plus an already running worker).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.vocabulary import KnownQuantization
from tools.mesh.sample import SOURCES
from tools.models.checkpoints import CATALOG_PREFIX, QUANTIZATION_OF_SCHEME, parse_catalog_model
from tools.paths import DATA_DIR

TINY_MODEL_PREFIX = "tiny:"
"""`model: tiny:s` (or `tiny:m`) asks for the tiny local model of that size, built on first run."""
ADDRESS_PATTERN = r"^[^\s:]+:\d{1,5}$"

ModeLabel = Literal["cheapest", "interactive", "batch"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisConfig(_Strict):
    """Where the profile store lives: `url`, else the `REDIS_URL` environment variable, else a local
    `redis-server` started on a free port."""

    url: str | None = Field(None, description="redis://host:port/db of an existing Redis.")
    binary: str = Field("redis-server", description="The redis-server executable used when one is started.")


class ServiceConfig(_Strict):
    """A service `quantmesh up` starts (no `address`) or only checks (with `address`)."""

    address: str | None = Field(None, pattern=ADDRESS_PATTERN, description="host:port of a running instance.")
    host: str = Field("127.0.0.1", description="Bind address of a started instance.")
    port: int = Field(0, ge=0, le=65535, description="Port of a started instance; 0 picks a free one.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra settings (QUANTMESH_<SERVICE>_*).")
    start_timeout_s: float = Field(60.0, gt=0, description="How long to wait for health SERVING, s.")

    @property
    def managed(self) -> bool:
        """True when `quantmesh up` starts (and stops) this service."""
        return self.address is None


class WorkerConfig(ServiceConfig):
    """One InferenceWorker and the pair it serves.

    `model` is required for a started worker: `tiny:s` / `tiny:m` (the tiny local models, built under
    `<repo>/.cache/models/` on first run), `catalog:<model>/<scheme>` (a real pair of `tools.models.catalog`,
    fetched, converted and quantized under `<repo>/.cache/models/` on first run; `quantization` must match the
    scheme), a local model directory, or a Hugging Face model id.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="A label for logs and tables.")
    model: str | None = None
    served_model_name: str | None = Field(None, description="The pair's model_id; default: `model`.")
    quantization: KnownQuantization = "none"
    engine: Literal["vllm", "synthetic"] = "vllm"
    gpu_index: int | None = Field(None, ge=0, description="GPU to pin the worker to (CUDA_VISIBLE_DEVICES).")
    profile: dict[str, Any] | None = Field(
        None,
        description="The pair's profile figures (core.profiles.PairProfile without model_id, "
        "quantization, endpoint; cost_per_1m_tokens_usd is derived when absent).",
    )
    start_timeout_s: float = Field(300.0, gt=0)

    @model_validator(mode="after")
    def _check_model(self) -> WorkerConfig:
        if self.managed and not self.model:
            raise ValueError(f"worker {self.name}: `model` is required unless `address` is given")
        if self.address is not None and not self.served_model_name:
            raise ValueError(f"worker {self.name}: `served_model_name` is required with `address`")
        if self.model and self.model.startswith(TINY_MODEL_PREFIX):
            size = self.model.removeprefix(TINY_MODEL_PREFIX)
            if size not in ("s", "m"):
                raise ValueError(f"worker {self.name}: model {self.model!r}: tiny sizes are tiny:s and tiny:m")
        if self.model and self.model.startswith(CATALOG_PREFIX):
            try:
                _, scheme = parse_catalog_model(self.model)
            except ValueError as exc:
                raise ValueError(f"worker {self.name}: {exc}") from None
            if QUANTIZATION_OF_SCHEME[scheme].value != self.quantization:
                raise ValueError(f"worker {self.name}: model {self.model!r} is quantization "
                                 f"{QUANTIZATION_OF_SCHEME[scheme].value!r}, not {self.quantization!r}")
        return self

    @property
    def model_id(self) -> str:
        """The model_id of the pair this worker reports."""
        return self.served_model_name or str(self.model)

    @property
    def tiny_size(self) -> str | None:
        """"s" or "m" for a tiny local model, else None."""
        if self.model and self.model.startswith(TINY_MODEL_PREFIX):
            return self.model.removeprefix(TINY_MODEL_PREFIX)
        return None


class MeasureConfig(_Strict):
    """How `quantmesh up` profiles the started workers when `profiles.file` is missing or stale (its provenance, in
    `<file>.provenance.json`, names another eval set or other checkpoints)."""

    eval: Path = Field(description="The graded eval set (tools/profiler/eval_set.py format).")
    price_per_hour_usd: float = Field(
        0.50, gt=0, description="Instance price per pair, USD/h; default: an AWS g5.xlarge-class A10G share, the "
        "design's $0.50/h (docs/architecture.md, Profiles).")
    concurrency: tuple[int, ...] = Field((1, 4), min_length=1, description="Concurrency levels of the sweep.")
    requests_per_level: int = Field(8, ge=1)
    load_output_tokens: int = Field(32, ge=2)
    accuracy_concurrency: int = Field(8, ge=1, description="Eval items in flight during the accuracy run.")
    timeout_s: float = Field(900.0, gt=0, description="Deadline of each profiler RPC, s (long answers of large "
                             "pairs on a CPU take minutes at full concurrency).")


class ProfilesConfig(_Strict):
    """Profiles not given inline: a profile document whose pairs are matched to workers."""

    file: Path | None = Field(None, description="A profile document (JSON, core/profiles.py schema).")
    measure: MeasureConfig | None = Field(
        None, description="Measure `file` with the profiler on the started workers when it is missing or stale.")

    @model_validator(mode="after")
    def _check_measure(self) -> ProfilesConfig:
        if self.measure is not None and self.file is None:
            raise ValueError("profiles.measure needs profiles.file (where the measured document is written)")
        return self


class RequirementsConfig(_Strict):
    """Requirements sent with each sample prompt (see `clients.messages.Requirements`)."""

    max_output_tokens: int = Field(32, ge=1)
    latency_budget_ms: int = Field(5000, ge=1)
    required_accuracy: float = Field(0.0, ge=0.0, le=1.0)
    mode: ModeLabel = "cheapest"


class SampleConfig(_Strict):
    """The prompt sample of `--run-sample` (held-out prompts, see `tools.mesh.sample`)."""

    data_dir: Path = Field(DATA_DIR, description="The evaluation data folder (`data/` in the repository).")
    counts: dict[str, int] = Field(
        default_factory=lambda: {"gsm8k": 3, "mmlu": 3, "clinc150": 3, "mt_bench": 3},
        description="Prompts per source.",
    )
    seed: int = Field(0, description="Seeds which held-out prompts are drawn.")
    split_seed: int = Field(0, description="The Classifier's training seed (which prompts are held out).")
    requirements: RequirementsConfig = RequirementsConfig()
    required_accuracy_by_source: dict[str, float] = Field(
        default_factory=dict, description="Overrides requirements.required_accuracy per source."
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature (0: greedy, reproducible).")
    concurrency: int = Field(1, ge=1, le=64, description="Prompts in flight at once.")

    @field_validator("counts", "required_accuracy_by_source")
    @classmethod
    def _known_sources(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown sources {unknown}; expected some of {list(SOURCES)}")
        return value

    @field_validator("required_accuracy_by_source")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for source, accuracy in value.items():
            if not 0.0 <= accuracy <= 1.0:
                raise ValueError(f"{source}: required accuracy {accuracy} is outside [0, 1]")
        return value

    def required_accuracy(self, source: str) -> float:
        return self.required_accuracy_by_source.get(source, self.requirements.required_accuracy)


class ComparisonConfig(_Strict):
    """The main job on real pairs (`tools.mesh.comparison`): held-out graded items, always the most accurate pair
    against routed. Needs measured profiles (`profiles.measure`)."""

    heldout: Path = Field(description="Held-out graded items (eval-set JSONL), disjoint from profiles.measure.eval.")
    limit: int | None = Field(None, ge=1, description="Only the first N items (the file is shuffled when built).")
    concurrency: int = Field(4, ge=1, le=64, description="Items in flight in each arm.")
    tolerance: float = Field(0.01, ge=0, le=1, description="Accuracy loss allowed when choosing the threshold.")
    required_accuracy: float | None = Field(
        None, ge=0, le=1, description="The routed arm's accuracy threshold; None: chosen on the profiling set.")


class MeshConfig(_Strict):
    """The whole mesh (see the module docstring)."""

    redis: RedisConfig = RedisConfig()
    classifier: ServiceConfig = ServiceConfig()
    router: ServiceConfig = ServiceConfig()
    gateway: ServiceConfig | None = Field(
        default_factory=ServiceConfig, description="The OpenAI-compatible HTTP gateway and chat page, started in "
        "front of the router (`address`: one already running, only checked); null: none.")
    batch_consumers: int = Field(
        1, ge=0, le=16, description="Batch consumers (`python -m services.router.batch`) started after the router, "
        "so that BatchService batches are served; 0: none.")
    workers: list[WorkerConfig] = Field(min_length=1)
    profiles: ProfilesConfig = ProfilesConfig()
    sample: SampleConfig = SampleConfig()
    comparison: ComparisonConfig | None = Field(
        None, description="With --run-sample: the before/after comparison on held-out graded items instead of the "
        "sample.")
    log_dir: Path | None = Field(None, description="Where service logs go; default <repo>/.cache/mesh/<time>.")
    stop_timeout_s: float = Field(30.0, gt=0, description="SIGTERM grace per service before SIGKILL, s.")

    @model_validator(mode="after")
    def _check_workers(self) -> MeshConfig:
        names: set[str] = set()
        pairs: set[tuple[str, str]] = set()
        for worker in self.workers:
            if worker.name in names:
                raise ValueError(f"workers: duplicate name {worker.name!r}")
            pair = (worker.model_id, worker.quantization)
            if pair in pairs:
                raise ValueError(f"workers: duplicate pair {pair[0]}/{pair[1]} (one worker per pair)")
            names.add(worker.name)
            pairs.add(pair)
            if worker.profile is None and self.profiles.file is None:
                raise ValueError(f"worker {worker.name}: no `profile` block and no `profiles.file`")
        if self.comparison is not None and self.profiles.measure is None:
            raise ValueError("comparison needs profiles.measure: it scores decisions by the profiler's graded answers")
        return self


def _resolve(base: Path, value: Any) -> Any:
    return str((base / value).resolve()) if isinstance(value, str) and not Path(value).is_absolute() else value


def load_mesh_config(path: Path) -> MeshConfig:
    """Reads and validates a mesh YAML file; relative paths resolve against its directory.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not YAML, or invalid (the message lists each offending field path).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: the mesh config must be a mapping")  # noqa: TRY004 - a bad value, not a bad call
    base = path.resolve().parent
    if isinstance(raw.get("profiles"), dict) and "file" in raw["profiles"]:
        raw["profiles"]["file"] = _resolve(base, raw["profiles"]["file"])
    if isinstance(raw.get("profiles"), dict) and isinstance(raw["profiles"].get("measure"), dict) \
            and "eval" in raw["profiles"]["measure"]:
        raw["profiles"]["measure"]["eval"] = _resolve(base, raw["profiles"]["measure"]["eval"])
    if isinstance(raw.get("comparison"), dict) and "heldout" in raw["comparison"]:
        raw["comparison"]["heldout"] = _resolve(base, raw["comparison"]["heldout"])
    if isinstance(raw.get("sample"), dict) and "data_dir" in raw["sample"]:
        raw["sample"]["data_dir"] = _resolve(base, raw["sample"]["data_dir"])
    if "log_dir" in raw:
        raw["log_dir"] = _resolve(base, raw["log_dir"])
    try:
        return MeshConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ValueError(f"{path}: {problems}") from exc


def derived_profile_fields(profile: dict[str, Any]) -> dict[str, Any]:
    """`profile` with `cost_per_1m_tokens_usd` derived (when absent) and `measured_at` defaulted to now (UTC).

    Cost formula (docs/architecture.md "Profiles"): instance_price_per_hour_usd / (throughput_tokens_per_s x 3600) x 1e6.
    """
    filled = dict(profile)
    if "cost_per_1m_tokens_usd" not in filled:
        price = filled.get("instance_price_per_hour_usd")
        throughput = filled.get("throughput_tokens_per_s")
        if isinstance(price, int | float) and isinstance(throughput, int | float) and throughput > 0:
            filled["cost_per_1m_tokens_usd"] = price / (throughput * 3600.0) * 1e6
    filled.setdefault("measured_at", dt.datetime.now(dt.UTC).isoformat())
    return filled
