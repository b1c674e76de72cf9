"""Proto <-> domain conversions of the InferenceWorker (pure)."""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp

from core.vocabulary import ChatRole, FinishReason, Quantization, from_proto, to_proto
from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2
from services.worker.engine import ChatTurn, EngineLoad, EngineModelInfo, SamplingSpec


def to_sampling_spec(sampling: common_pb2.SamplingParams) -> SamplingSpec:
    """Unset optional fields stay None (engine default)."""

    def optional(name: str) -> float | int | None:
        return getattr(sampling, name) if sampling.HasField(name) else None

    return SamplingSpec(
        temperature=optional("temperature"),
        top_p=optional("top_p"),
        top_k=optional("top_k"),
        seed=optional("seed"),
        stop=tuple(sampling.stop),
        presence_penalty=optional("presence_penalty"),
        frequency_penalty=optional("frequency_penalty"),
    )


def to_chat_turns(conversation: common_pb2.Conversation) -> list[ChatTurn]:
    """Chat messages with role names as chat templates expect them ("system", "user", "assistant")."""
    return [ChatTurn(role=from_proto(ChatRole, message.role).value, content=message.content)
            for message in conversation.messages]


def to_finish_reason(reason: FinishReason | None) -> int:
    """`quantmesh.common.v1.FinishReason` value (UNSPECIFIED when unknown)."""
    return to_proto(reason or FinishReason.UNSPECIFIED)


def to_pair(served_model_name: str, quantization_label: str) -> common_pb2.ModelQuantizationPair:
    return common_pb2.ModelQuantizationPair(
        model_id=served_model_name, quantization=to_proto(Quantization(quantization_label))
    )


def to_load_report(load: EngineLoad, *, serving: bool, observed_at_s: float | None = None) -> worker_pb2.LoadReport:
    """`observed_at_s`: Unix time in s (default: now)."""
    observed_at = Timestamp()
    observed_at.FromNanoseconds(int((time.time() if observed_at_s is None else observed_at_s) * 1e9))
    return worker_pb2.LoadReport(
        running_requests=load.running_requests,
        waiting_requests=load.waiting_requests,
        kv_cache_usage_fraction=load.kv_cache_usage_fraction,
        output_tokens_per_s=load.output_tokens_per_s,
        serving=serving,
        observed_at=observed_at,
    )


def to_model_info(
    info: EngineModelInfo, *, served_model_name: str, quantization_label: str
) -> worker_pb2.ModelInfo:
    return worker_pb2.ModelInfo(
        pair=to_pair(served_model_name, quantization_label),
        model_path=info.model_path,
        max_model_len=info.max_model_len,
        gpu=worker_pb2.GpuInfo(
            index=info.device_index,
            name=info.device_name,
            memory_total_bytes=info.memory_total_bytes,
            memory_used_bytes=info.memory_used_bytes,
        ),
        engine_version=info.engine_version,
        tokenizer=info.tokenizer,
        kv_cache_capacity_tokens=info.kv_cache_capacity_tokens,
        max_num_seqs=info.max_num_seqs,
    )
