"""The meshes the reliability suite runs: which workers, with which profiles.

Synthetic workers (`QUANTMESH_WORKER_ENGINE=synthetic`: deterministic tokens, id of token i = i % 12, at a fixed
rate per stream) serve the load and most fault scenarios, where the model's speed is not the point. Their profiles
state an aggregate throughput (`SYNTHETIC_PROFILE_THROUGHPUT`) that the router's latency model uses to predict the
slowdown of each extra running stream (ITL under load = (running + 1) / throughput): that is the capacity the
router's admission control defends. The real vLLM worker (tiny-llama-s) serves the scenarios about engine requests.
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.reliability import WorkerSpec
from tests.router.helpers import pair_dict

SYNTHETIC_TOKENS_PER_S = 50.0  # per stream: 16 tokens take ~305 ms
SYNTHETIC_PROFILE_THROUGHPUT = 150.0  # tokens/s the profile claims per worker
SYNTHETIC_WORDS = 12  # services.worker.synthetic_engine.WORDS: token i has id i % 12


def synthetic_worker(name: str, model_id: str, *, accuracy: tuple[float, float, float],
                     price_per_hour_usd: float) -> WorkerSpec:
    profile = pair_dict(model_id, "placeholder", price_per_hour_usd=price_per_hour_usd,
                        throughput_tokens_per_s=SYNTHETIC_PROFILE_THROUGHPUT, ttft_p50_ms=10.0, ttft_p99_ms=30.0,
                        itl_p50_ms=1000.0 / SYNTHETIC_TOKENS_PER_S, accuracy=accuracy, max_model_len=512)
    env = {"QUANTMESH_WORKER_ENGINE": "synthetic", "QUANTMESH_WORKER_MODEL": f"synthetic:{model_id}",
           "QUANTMESH_WORKER_MAX_MODEL_LEN": "512",
           "QUANTMESH_WORKER_SYNTHETIC_TOKENS_PER_S": str(SYNTHETIC_TOKENS_PER_S),
           "QUANTMESH_WORKER_SYNTHETIC_TTFT_MS": "5"}
    return WorkerSpec(name, profile, env)


def synthetic_pair() -> list[WorkerSpec]:
    """Two synthetic pairs: a cheaper, less accurate one and a dearer, more accurate one."""
    return [
        synthetic_worker("syn-small", "syn-small", accuracy=(0.85, 0.7, 0.5), price_per_hour_usd=0.5),
        synthetic_worker("syn-large", "syn-large", accuracy=(0.95, 0.9, 0.8), price_per_hour_usd=1.0),
    ]


def vllm_worker(name: str, model_dir: Path) -> WorkerSpec:
    """tiny-llama-s on real vLLM (profile figures of deploy/mesh/local.yaml)."""
    profile = pair_dict("tiny-llama-s", "placeholder", price_per_hour_usd=0.10, throughput_tokens_per_s=507.3,
                        ttft_p50_ms=31.6, ttft_p99_ms=76.4, itl_p50_ms=5.0, accuracy=(0.9, 0.62, 0.35),
                        max_model_len=2048, tokenization_ratio=2.49)
    env = {"QUANTMESH_WORKER_ENGINE": "vllm", "QUANTMESH_WORKER_MODEL": str(model_dir),
           "QUANTMESH_WORKER_MAX_MODEL_LEN": "2048"}
    return WorkerSpec(name, profile, env, vllm=True)
