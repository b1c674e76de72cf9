"""Mesh config loading and validation, and the profile document `quantmesh up` publishes (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.profiles import derived_cost_per_1m_tokens_usd
from tools.mesh.mesh import build_profile_document
from tools.mesh.mesh_config import load_mesh_config
from tools.paths import REPO_ROOT

MESH_DIR = REPO_ROOT / "deploy" / "mesh"


def test_local_config_describes_two_distinct_tiny_pairs_with_profiles() -> None:
    config = load_mesh_config(MESH_DIR / "local.yaml")
    assert len(config.workers) >= 2
    assert all(w.managed and w.tiny_size in ("s", "m") for w in config.workers)
    assert len({(w.model_id, w.quantization) for w in config.workers}) == len(config.workers)
    assert config.redis.url is None and config.classifier.managed and config.router.managed
    document = build_profile_document(config, {w.name: f"127.0.0.1:{5000 + i}" for i, w in
                                               enumerate(config.workers)})
    assert [(p.model_id, p.endpoint) for p in document.pairs] == [
        (w.model_id, f"127.0.0.1:{5000 + i}") for i, w in enumerate(config.workers)]
    for pair in document.pairs:  # cost derived from price and throughput, not typed in
        assert pair.cost_per_1m_tokens_usd == pytest.approx(
            derived_cost_per_1m_tokens_usd(pair.instance_price_per_hour_usd, pair.throughput_tokens_per_s))


def test_real_config_names_catalog_pairs_measured_profiles_and_the_comparison() -> None:
    config = load_mesh_config(MESH_DIR / "real.yaml")
    assert all(w.model and w.model.startswith("catalog:") for w in config.workers)
    assert {w.quantization for w in config.workers} >= {"none", "w8a8"}
    assert config.profiles.measure is not None and config.profiles.measure.eval.is_file()
    assert config.profiles.measure.price_per_hour_usd == 0.50
    assert config.comparison is not None and config.comparison.heldout.is_file()


def test_gpu_example_mixes_started_gpu_workers_and_a_running_one() -> None:
    config = load_mesh_config(MESH_DIR / "gpu-example.yaml")
    started = [w for w in config.workers if w.managed]
    running = [w for w in config.workers if not w.managed]
    assert started and running
    assert all(w.gpu_index is not None and w.tiny_size is None for w in started)
    assert {w.quantization for w in config.workers} >= {"fp8", "awq"}
    document = build_profile_document(config, {w.name: w.address or f"gpu-host:{w.port}" for w in config.workers})
    assert len(document.pairs) == len(config.workers)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mesh.yaml"
    path.write_text(text)
    return path


PROFILE = ("{instance_price_per_hour_usd: 1.0, throughput_tokens_per_s: 100, ttft_p50_ms: 10, ttft_p99_ms: 20, "
           "itl_p50_ms: 5, accuracy_by_tier: {simple: 0.9, complex: 0.8, hard: 0.7}, max_model_len: 512, "
           "gpu_memory_gib: 0, tokenization_ratio: 1.0}")


@pytest.mark.parametrize(("body", "message"), [
    ("workers: []", "workers: List should have at least 1 item"),
    (f"workers: [{{name: a, profile: {PROFILE}}}]", "`model` is required unless `address`"),
    (f"workers: [{{name: a, model: 'tiny:xl', profile: {PROFILE}}}]", "tiny sizes are tiny:s and tiny:m"),
    ("workers: [{name: a, model: 'tiny:s'}]", "no `profile` block and no `profiles.file`"),
    (f"workers: [{{name: a, model: 'tiny:s', profile: {PROFILE}}}, {{name: b, model: 'tiny:s', profile: {PROFILE}}}]",
     "duplicate pair tiny:s/none"),
    (f"workers: [{{name: a, model: 'tiny:s', profile: {PROFILE}, gpu: 0}}]", "workers.0.gpu: Extra inputs"),
    (f"workers: [{{name: a, address: 'nohost', served_model_name: x, profile: {PROFILE}}}]", "workers.0.address"),
    (f"workers: [{{name: a, model: 'tiny:s', profile: {PROFILE}}}]\nsample: {{counts: {{imdb: 2}}}}",
     "unknown sources ['imdb']"),
    ("workers: [", "not valid YAML"),
    (f"workers: [{{name: a, model: 'catalog:gpt-5/bf16', profile: {PROFILE}}}]", "unknown model 'gpt-5'"),
    (f"workers: [{{name: a, model: 'catalog:smollm2-135m-instruct/int3', profile: {PROFILE}}}]",
     "unknown scheme 'int3'"),
    (f"workers: [{{name: a, model: 'catalog:smollm2-135m-instruct/w8a8', profile: {PROFILE}}}]",
     "is quantization 'w8a8', not 'none'"),
    (f"workers: [{{name: a, model: 'tiny:s', profile: {PROFILE}}}]\nprofiles: {{measure: {{eval: x.jsonl}}}}",
     "profiles.measure needs profiles.file"),
    (f"workers: [{{name: a, model: 'tiny:s', profile: {PROFILE}}}]\ncomparison: {{heldout: h.jsonl}}",
     "comparison needs profiles.measure"),
])
def test_invalid_configs_name_the_field(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ValueError, match="mesh.yaml") as info:
        load_mesh_config(_write(tmp_path, body))
    assert message in str(info.value)


def test_profile_file_pairs_are_matched_to_workers_and_get_their_addresses(tmp_path: Path) -> None:
    figures = {"instance_price_per_hour_usd": 2.0, "throughput_tokens_per_s": 1000.0,
               "cost_per_1m_tokens_usd": derived_cost_per_1m_tokens_usd(2.0, 1000.0), "ttft_p50_ms": 50,
               "ttft_p99_ms": 90, "itl_p50_ms": 10, "accuracy_by_tier": {"simple": 0.9, "complex": 0.8, "hard": 0.6},
               "max_model_len": 4096, "gpu_memory_gib": 20, "tokenization_ratio": 1.1,
               "measured_at": "2026-01-01T00:00:00Z"}
    (tmp_path / "profiles.json").write_text(json.dumps({"pairs": [
        {**figures, "model_id": "m-8b", "quantization": "awq", "endpoint": "old:1"},
        {**figures, "model_id": "unused", "quantization": "fp8", "endpoint": "old:2"},
    ]}))
    config = load_mesh_config(_write(tmp_path, "profiles: {file: profiles.json}\n"
                                               "workers: [{name: w, model: org/m-8b, served_model_name: m-8b, "
                                               "quantization: awq}]"))
    document = build_profile_document(config, {"w": "10.0.0.5:7000"})
    assert [(p.model_id, p.quantization.value, p.endpoint) for p in document.pairs] == [("m-8b", "awq", "10.0.0.5:7000")]
    assert document.pairs[0].max_model_len == 4096


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path) -> None:
    config = load_mesh_config(_write(tmp_path, f"workers: [{{name: a, model: 'tiny:s', profile: {PROFILE}}}]\n"
                                               "sample: {data_dir: data}\nlog_dir: logs"))
    assert config.sample.data_dir == tmp_path / "data"
    assert config.log_dir == tmp_path / "logs"
