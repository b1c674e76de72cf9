"""The reference tokenizer: a byte-level BPE shipped as a small JSON file, usable offline.

Every component that estimates tokens before a model's own tokenizer is at hand (the classifier's
`estimated_input_tokens`, the router's per-model estimate via each profile's tokenization ratio, the profiler when
it measures that ratio) counts with this one tokenizer, so that the ratios compose.

It is a GPT-2 style byte-level BPE (any UTF-8 text encodes, no unknown token), 8,192 tokens, trained with the
Hugging Face `tokenizers` library by `python -m tools.classifier_training.train` on the training split of the shared
data (English prompts, questions, chat and banking requests). Byte-level BPE is the scheme of GPT-2 and Llama 3;
on English prose it gives about 1.2-1.4 tokens per word, close to those models' counts. It is not any served
model's tokenizer: that is why profiles carry a tokenization ratio against it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

DEFAULT_PATH = Path(__file__).resolve().parent / "artifacts" / "reference_tokenizer.json"
VOCAB_SIZE = 8192
_SPACE_MARKER = "\u0120"  # byte-level BPE's rendering of a leading space ("Ġ")


def train_reference_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Trains a byte-level BPE on `texts` (deterministic for the same texts in the same order)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


class ReferenceTokenizer:
    """Token ids and counts under the reference tokenizer.

    Args:
        path: The tokenizer JSON (default: the one shipped in `core/classifier_model/artifacts/`).

    Raises:
        FileNotFoundError: `path` does not exist.
        Exception: `path` is not a valid `tokenizers` JSON (the `tokenizers` library's own error).
    """

    def __init__(self, path: Path = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self._tokenizer = Tokenizer.from_str(self.path.read_text())
        vocab = self._tokenizer.get_vocab()
        # Which ids are numeric (only digits once the leading-space marker is removed): the numeric-token share.
        self.numeric_ids = frozenset(
            token_id for token, token_id in vocab.items() if token.removeprefix(_SPACE_MARKER).isdigit()
        )
        self.vocab_size = self._tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no special tokens added), on the calling thread (a batch of one would be handed to
        the library's thread pool)."""
        return self._tokenizer.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each of `texts`, the same as `encode` one by one (a batch is spread over the library's
        threads unless TOKENIZERS_PARALLELISM=false).

        `encode_batch_fast` skips the character offsets, which nothing here reads: about 15 % less time per text.
        """
        return [
            encoding.ids for encoding in self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        ]

    def count_tokens(self, text: str) -> int:
        """Number of tokens of `text`."""
        return len(self.encode(text))

    def numeric_token_share(self, ids: list[int]) -> float:
        """Share of `ids` that are numeric tokens (digits only), in [0, 1]; 0.0 for no tokens."""
        if not ids:
            return 0.0
        numeric = self.numeric_ids
        return sum(1 for token_id in ids if token_id in numeric) / len(ids)


@functools.cache
def default_tokenizer() -> ReferenceTokenizer:
    """The shipped reference tokenizer, loaded once per process."""
    return ReferenceTokenizer(DEFAULT_PATH)


def count_tokens(text: str) -> int:
    """Tokens of `text` under the shipped reference tokenizer (the number the router and profiler compare against)."""
    return default_tokenizer().count_tokens(text)
