"""Builds tiny Llama-architecture models that vLLM can load, deterministically and offline, for tests and benchmarks.

A model directory holds what vLLM and transformers expect of a hub checkpoint: `config.json` (`LlamaConfig`),
`generation_config.json`, `model.safetensors` (bf16), `tokenizer.json` (byte-level BPE trained with `tokenizers`
on `tools.tiny_model.corpus`), `tokenizer_config.json` (with a `chat_template`), plus `golden_prompts.json`
(the start-up check the worker runs by default, see `services.worker.golden`) and `quantmesh_tiny_model.json`
(the build spec, written last: its presence marks a complete build).

The model is trained for a few seconds on CPU until greedy decoding answers every golden prompt
("The capital of France is" -> " Paris"), so the worker's golden-prompt check is a real check.
head_dim is 64 because vLLM's CPU attention kernels reject smaller heads.

CLI: `python -m tools.tiny_model.build DIR --size s [--seed 0]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.tiny_model import corpus as tiny_corpus

BUILD_VERSION = 7  # bump when the build changes: cached models are rebuilt
SPEC_FILE = "quantmesh_tiny_model.json"
GOLDEN_FILE = "golden_prompts.json"
MAX_POSITION_EMBEDDINGS = 2048


@dataclass(frozen=True)
class TinyModelSize:
    """Architecture and training budget of one size."""

    hidden_size: int
    num_layers: int
    intermediate_size: int
    max_train_steps: int
    learning_rate: float


SIZES = {
    "s": TinyModelSize(hidden_size=128, num_layers=2, intermediate_size=256, max_train_steps=1500, learning_rate=3e-3),
    "m": TinyModelSize(hidden_size=192, num_layers=3, intermediate_size=384, max_train_steps=1500, learning_rate=2e-3),
}
HEAD_DIM = 64
TOKENIZER_VOCAB_SIZE = 512
TRAIN_PARAGRAPHS = 24
TRAIN_BATCH = 12
CHECK_EVERY_STEPS = 25
# Train until each expected golden token leads the runner-up by this many logits: a barely-learned answer flips
# under another engine's kernels (the weights are saved in float32, so no rounding is added on the way to vLLM).
MIN_LOGIT_MARGIN = 2.0


def build_tiny_model(directory: Path, *, size: str = "s", seed: int = 0) -> Path:
    """Builds the tiny model `size` into `directory` (created) and returns `directory`.

    Building into a directory that already holds a complete build of the same spec is a no-op. The build is
    written to a temporary sibling directory and renamed into place, so a half-written model is never seen.

    Args:
        directory: Target directory.
        size: "s" (~0.4 M parameters) or "m" (~1.3 M parameters).
        seed: Seeds the corpus order, the weight initialisation and the batch order.

    Raises:
        ValueError: unknown `size`.
        RuntimeError: the model did not learn the golden prompts within its step budget.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    directory = Path(directory)
    spec = {"build_version": BUILD_VERSION, "size": size, "seed": seed}
    spec_path = directory / SPEC_FILE
    if spec_path.exists() and json.loads(spec_path.read_text()) == spec:
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        _build_into(staging, SIZES[size], seed)
        (staging / SPEC_FILE).write_text(json.dumps(spec))
        staging.chmod(0o755)  # mkdtemp makes it private
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _build_into(directory: Path, size: TinyModelSize, seed: int) -> None:
    import torch  # heavy imports only when a build is needed
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    # One thread: a few-MB model gains nothing from more, and it keeps the build fast beside busy vLLM engines.
    torch.set_num_threads(1)
    tokenizer = _train_tokenizer(directory)
    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_layers,
        num_attention_heads=size.hidden_size // HEAD_DIM,
        num_key_value_heads=size.hidden_size // HEAD_DIM,
        head_dim=HEAD_DIM,
        max_position_embeddings=MAX_POSITION_EMBEDDINGS,
        bos_token_id=tokenizer.token_to_id(tiny_corpus.BOS_TOKEN),
        eos_token_id=tokenizer.token_to_id(tiny_corpus.EOS_TOKEN),
        pad_token_id=tokenizer.token_to_id(tiny_corpus.PAD_TOKEN),
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    _train(model, hf_tokenizer, size, seed, tokenizer.token_to_id(tiny_corpus.PAD_TOKEN))
    # float32, as trained: bf16 rounding moved the golden answers' logits enough to flip them under vLLM.
    model.save_pretrained(directory, safe_serialization=True)
    _write_tokenizer_config(directory)
    golden = [asdict(golden) for golden in tiny_corpus.GOLDEN_PROMPTS]
    (directory / GOLDEN_FILE).write_text(json.dumps(golden, indent=2))


def _train_tokenizer(directory: Path):  # -> tokenizers.Tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_SIZE,
        special_tokens=list(tiny_corpus.SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(tiny_corpus.tokenizer_training_text(), trainer=trainer)
    bos_id = tokenizer.token_to_id(tiny_corpus.BOS_TOKEN)
    # Raw prompts get a BOS token, like Llama tokenizers; the chat template writes its own.
    tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(
            single=f"{tiny_corpus.BOS_TOKEN} $A",
            pair=f"{tiny_corpus.BOS_TOKEN} $A $B",
            special_tokens=[(tiny_corpus.BOS_TOKEN, bos_id)],
        ),
    ])
    tokenizer.save(str(directory / "tokenizer.json"))
    return tokenizer


def _write_tokenizer_config(directory: Path) -> None:
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": tiny_corpus.BOS_TOKEN,
        "eos_token": tiny_corpus.EOS_TOKEN,
        "pad_token": tiny_corpus.PAD_TOKEN,
        "add_bos_token": True,
        "model_max_length": MAX_POSITION_EMBEDDINGS,
        "clean_up_tokenization_spaces": False,
        "chat_template": tiny_corpus.CHAT_TEMPLATE,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {key: config[key] for key in ("bos_token", "eos_token", "pad_token")}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def _train(model, tokenizer, size: TinyModelSize, seed: int, pad_id: int) -> None:
    """Trains until every golden prompt's expected text wins greedy decoding by MIN_LOGIT_MARGIN."""
    import torch

    documents = tiny_corpus.raw_paragraphs(TRAIN_PARAGRAPHS, seed)
    documents += [
        tiny_corpus.render_chat(conversation, add_generation_prompt=False)
        for conversation in tiny_corpus.chat_conversations()
    ]
    encoded = [
        tokenizer(text, add_special_tokens=not text.startswith(tiny_corpus.BOS_TOKEN))["input_ids"]
        for text in documents
    ]
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=size.learning_rate, weight_decay=0.0)
    # Linear decay to 10%: at a constant rate the facts keep trading places and the margins never settle.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.1, 1.0 - step / size.max_train_steps)
    )
    model.train()
    for step in range(1, size.max_train_steps + 1):
        order = torch.randperm(len(encoded), generator=generator)[:TRAIN_BATCH].tolist()
        input_ids, labels, attention = _pad_batch([encoded[i] for i in order], pad_id)
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % CHECK_EVERY_STEPS == 0 and _golden_margin(model, tokenizer) >= MIN_LOGIT_MARGIN:
            return
    raise RuntimeError(f"tiny model did not learn the golden prompts in {size.max_train_steps} steps")


def _pad_batch(batch: list[list[int]], pad_id: int):
    import torch

    length = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    attention = torch.zeros((len(batch), length), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
    return input_ids, labels, attention


def _golden_margin(model, tokenizer) -> float:
    """Smallest logit margin, over every golden prompt and every token of its expected text (teacher-forced), of the
    expected token over the best other token. Positive: greedy decoding yields the expected text."""
    import torch

    model.eval()
    margins = []
    try:
        with torch.no_grad():
            for golden in tiny_corpus.GOLDEN_PROMPTS:
                prompt_ids = tokenizer(golden.prompt)["input_ids"]
                expected_ids = tokenizer(golden.expected, add_special_tokens=False)["input_ids"]
                ids = torch.tensor([prompt_ids + expected_ids])
                logits = model(input_ids=ids).logits[0]
                for offset, token_id in enumerate(expected_ids):
                    row = logits[len(prompt_ids) - 1 + offset].clone()
                    target = row[token_id].item()
                    row[token_id] = float("-inf")
                    margins.append(target - row.max().item())
        return min(margins)
    finally:
        model.train()


def main() -> None:
    parser = argparse.ArgumentParser(description="Build a tiny Llama-architecture model for vLLM tests.")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="s")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build_tiny_model(args.directory, size=args.size, seed=args.seed))


if __name__ == "__main__":
    main()
