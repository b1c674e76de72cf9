"""The profiler command end to end without vLLM: bad input, an unreachable worker (nothing written, nothing
published, through a real router + Redis), and a full run against real workers serving the synthetic engine
(model-free, so accuracy is 0; the real-model run is `test_profile_vllm.py`)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from core.profiles import parse_profile_document
from quantmesh.router.v1 import router_pb2, router_pb2_grpc
from services.router.profile_store import ProfileStore, connect
from tests.fixtures.profiler import tiny_eval_lines
from tests.router.helpers import document, pair_dict
from tools.mesh.launch import WorkerProcess, start_worker
from tools.mesh.processes import free_port
from tools.profiler.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main

SYNTHETIC_TOKENS_PER_S = 200.0


@pytest.fixture(scope="module")
def synthetic_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WorkerProcess]]:
    log_dir = tmp_path_factory.mktemp("synthetic-workers")
    workers = [
        start_worker(Path(name), served_model_name=name, quantization=quantization, engine="synthetic",
                     log_path=log_dir / f"{name}.log",
                     extra_env={"QUANTMESH_WORKER_SYNTHETIC_TOKENS_PER_S": str(SYNTHETIC_TOKENS_PER_S),
                                "QUANTMESH_WORKER_SYNTHETIC_TTFT_MS": "20"}, timeout_s=30.0)
        for name, quantization in (("synthetic-a", "awq"), ("synthetic-b", "fp8"))
    ]
    yield workers
    for worker in workers:
        worker.stop()


@pytest.fixture
def eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "eval.jsonl"
    path.write_text("\n".join(tiny_eval_lines(per_kind=1)) + "\n")
    return path


def args(workers: list[str], eval_file: Path, output: Path, tokenizer: Path, *extra: str) -> list[str]:
    worker_args = [part for address in workers for part in ("--worker", address)]
    return [*worker_args, "--eval", str(eval_file), "--price-per-hour-usd", "1.5", "--output", str(output),
            "--reference-tokenizer", str(tokenizer), "--concurrency", "1,2", "--requests-per-level", "2",
            "--load-output-tokens", "4", "--no-progress", "--connect-timeout-s", "2", "--timeout-s", "20", *extra]


def test_malformed_eval_file_names_each_line_and_writes_nothing(tmp_path, reference_tokenizer_path, capsys) -> None:
    path = tmp_path / "bad.jsonl"
    good = tiny_eval_lines(per_kind=1)
    path.write_text("\n".join([good[0], "{oops", good[1], json.dumps({"prompt": "x", "tier": "easy"}), good[2]]))
    output = tmp_path / "profiles.json"
    code = main(args(["127.0.0.1:1"], path, output, reference_tokenizer_path))
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "line 2: not valid JSON" in err and "line 4: tier:" in err and "line 4: intent:" in err
    assert "line 1" not in err and "line 3" not in err and "no item was skipped" in err
    assert not output.exists()


def test_eval_file_missing_a_tier_is_refused(tmp_path, reference_tokenizer_path, capsys) -> None:
    path = tmp_path / "two-tiers.jsonl"
    path.write_text("\n".join(line for line in tiny_eval_lines(per_kind=1) if '"hard"' not in line))
    assert main(args(["127.0.0.1:1"], path, tmp_path / "p.json", reference_tokenizer_path)) == EXIT_USAGE
    assert "no item of tier hard" in capsys.readouterr().err


def test_price_count_must_match_workers(tmp_path, eval_file, reference_tokenizer_path, capsys) -> None:
    argv = args(["127.0.0.1:1", "127.0.0.1:2"], eval_file, tmp_path / "p.json", reference_tokenizer_path)
    argv[argv.index("1.5")] = "1.5 2 3"
    argv = [part for piece in argv for part in (piece.split() if piece == "1.5 2 3" else [piece])]
    assert main(argv) == EXIT_USAGE
    assert "one price or one per worker (2), got 3" in capsys.readouterr().err


def test_endpoint_count_must_match_workers(tmp_path, eval_file, reference_tokenizer_path, capsys) -> None:
    argv = args(["127.0.0.1:1", "127.0.0.1:2"], eval_file, tmp_path / "p.json", reference_tokenizer_path,
                "--endpoint", "dns:///pool-headless:50053")
    assert main(argv) == EXIT_USAGE
    assert "--endpoint: give one per worker (2), got 1" in capsys.readouterr().err


async def _get_profiles(address: str) -> router_pb2.GetProfilesResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        return await router_pb2_grpc.RouterAdminServiceStub(channel).GetProfiles(
            router_pb2.GetProfilesRequest(), timeout=5)


def test_unreachable_worker_fails_clearly_and_publishes_nothing(
        synthetic_workers, redis_server, router_factory, tmp_path, eval_file, reference_tokenizer_path,
        capsys) -> None:
    prefix = f"test:{uuid.uuid4().hex}"
    seed = document(pair_dict("seed-model", "127.0.0.1:9", quantization="none"))
    asyncio.run(ProfileStore(connect(redis_server.url), prefix).publish(seed))
    router = router_factory(redis_url=redis_server.url, profiles_prefix=prefix)
    before = asyncio.run(_get_profiles(router.address))
    unreachable = f"127.0.0.1:{free_port()}"
    output = tmp_path / "profiles.json"

    code = main(args([synthetic_workers[0].address, unreachable], eval_file, output, reference_tokenizer_path,
                     "--publish", router.address))

    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert f"worker {unreachable}: unreachable (UNAVAILABLE" in err and "nothing was written or published" in err
    assert synthetic_workers[0].address not in err  # the healthy worker is not blamed
    assert not output.exists() and not output.with_suffix(".report.json").exists()
    after = asyncio.run(_get_profiles(router.address))
    assert after.version == before.version and after.document_json == before.document_json


def test_full_run_against_synthetic_workers(synthetic_workers, tmp_path, eval_file, reference_tokenizer_path,
                                            capsys) -> None:
    output = tmp_path / "out" / "profiles.json"
    addresses = [worker.address for worker in synthetic_workers]
    assert main(args(addresses, eval_file, output, reference_tokenizer_path)) == EXIT_OK
    profiles = parse_profile_document(output.read_text())
    assert [pair.endpoint for pair in profiles.pairs] == addresses
    # Published under other endpoints (a pool's headless Service, or a replica list), measured the same.
    renamed = tmp_path / "renamed.json"
    endpoints = ["dns:///pool-a-headless:50053", f"{addresses[1]},127.0.0.1:9"]
    assert main(args(addresses, eval_file, renamed, reference_tokenizer_path, "--endpoint", *endpoints)) == EXIT_OK
    assert [pair.endpoint for pair in parse_profile_document(renamed.read_text()).pairs] == endpoints
    assert [(pair.model_id, pair.quantization.value) for pair in profiles.pairs] == [
        ("synthetic-a", "awq"), ("synthetic-b", "fp8")]
    for pair in profiles.pairs:
        # The synthetic engine emits one token per 1/200 s after 20 ms: the measured figures must say so.
        assert 20.0 <= pair.ttft_p50_ms < 200.0
        assert 1000.0 / SYNTHETIC_TOKENS_PER_S * 0.5 <= pair.itl_p50_ms <= 1000.0 / SYNTHETIC_TOKENS_PER_S * 3
        assert pair.accuracy_by_tier.simple == 0.0  # it never answers a question
    report = json.loads(output.with_suffix(".report.json").read_text())
    assert [level["concurrency"] for level in report["pairs"][0]["levels"]] == [1, 2]
    assert output.with_suffix(".png").stat().st_size > 10_000
    assert "Pair profiles" in capsys.readouterr().out
