"""The fixed training corpus of the tiny test models, generated deterministically (no files, no network).

The corpus is a set of short facts ("The capital of France is Paris.") arranged two ways:
- raw paragraphs: facts in a seeded order, one after another, with no end-of-sequence token, so that most raw
  prompts keep generating until max_output_tokens under greedy decoding (streaming tests and benchmarks pick prompts
  checked to do so; the end-of-turn token learned from chat turns can still be sampled);
- chat turns rendered with `CHAT_TEMPLATE`, ending with the end-of-turn token, so that a chat request stops by itself.

The golden prompts (`GOLDEN_PROMPTS`) are facts of the corpus: a trained tiny model continues them with the expected
text under greedy decoding, and a model whose weights are damaged does not.
"""

from __future__ import annotations

import random

from core.golden import GoldenPrompt

BOS_TOKEN = "<s>"
EOS_TOKEN = "<|end|>"
PAD_TOKEN = "<pad>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, *ROLE_TOKENS)

# Jinja chat template (transformers / vLLM convention): one block per message, then the assistant header.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

CAPITALS = (
    ("France", "Paris"),
    ("Spain", "Madrid"),
    ("Italy", "Rome"),
    ("Germany", "Berlin"),
    ("Japan", "Tokyo"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Peru", "Lima"),
    ("Kenya", "Nairobi"),
    ("Norway", "Oslo"),
    ("Greece", "Athens"),
    ("Ireland", "Dublin"),
)
COLOURS = (("the sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("a lemon", "yellow"))
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
SUMS = ((2, 2), (1, 2), (3, 4), (5, 5), (2, 6), (4, 3))
SYSTEM_PROMPT = "You are a helpful assistant."


GOLDEN_PROMPTS = (
    GoldenPrompt("The capital of France is", " Paris"),
    GoldenPrompt("The capital of Japan is", " Tokyo"),
    GoldenPrompt("Two plus two is", " four"),
    GoldenPrompt("The colour of grass is", " green"),
)


def facts() -> list[tuple[str, str, str]]:
    """Every fact as (statement, question, answer), for example ("The capital of France is Paris.", ...)."""
    rows = [
        (f"The capital of {country} is {city}.", f"What is the capital of {country}?", city)
        for country, city in CAPITALS
    ]
    rows += [(f"The colour of {thing} is {colour}.", f"What colour is {thing}?", colour) for thing, colour in COLOURS]
    rows += [
        (
            f"{NUMBERS[a].capitalize()} plus {NUMBERS[b]} is {NUMBERS[a + b]}.",
            f"What is {NUMBERS[a]} plus {NUMBERS[b]}?",
            NUMBERS[a + b].capitalize(),
        )
        for a, b in SUMS
    ]
    return rows


def raw_paragraphs(count: int, seed: int) -> list[str]:
    """`count` paragraphs, each every fact once in a seeded order, separated by spaces (no end token)."""
    rng = random.Random(seed)
    statements = [statement for statement, _, _ in facts()]
    paragraphs = []
    for _ in range(count):
        rng.shuffle(statements)
        paragraphs.append(" ".join(statements))
    return paragraphs


def chat_conversations() -> list[list[dict[str, str]]]:
    """One conversation per fact, with and without a system message; the assistant answers with the statement."""
    conversations = []
    for index, (statement, question, _) in enumerate(facts()):
        turns = [{"role": "user", "content": question}, {"role": "assistant", "content": statement}]
        if index % 2 == 0:
            turns.insert(0, {"role": "system", "content": SYSTEM_PROMPT})
        conversations.append(turns)
    return conversations


def render_chat(messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    """`CHAT_TEMPLATE` rendered in Python (for training; the served model renders the Jinja template itself)."""
    text = BOS_TOKEN + "".join(f"<|{m['role']}|>\n{m['content']}{EOS_TOKEN}\n" for m in messages)
    return text + ("<|assistant|>\n" if add_generation_prompt else "")


def tokenizer_training_text() -> list[str]:
    """The texts the BPE tokenizer is trained on: the facts, questions and chat turns."""
    texts = [" ".join(row) for row in facts()]
    texts += [render_chat(conversation, add_generation_prompt=False) for conversation in chat_conversations()]
    texts += [SYSTEM_PROMPT, " ".join(NUMBERS)]
    return texts
