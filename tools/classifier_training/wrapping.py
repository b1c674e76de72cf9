"""Held-out questions in the wrappings real traffic puts around them, to measure that the classifier scores the
question and not the wrapping (`core.classifier_model.focus`).

Three wrappings, each built from text the classifier never scores as the question:
- `few_shot`: five worked examples before the question, in the dataset's usual 5-shot format. GSM8K examples are
  GSM8K train-split questions with their reference solutions (data/gsm8k/train.jsonl, which the complexity data
  does not use); MMLU examples are MMLU prompts of the classifier's training split, in MMLU's "The following are
  multiple choice questions (with answers) about <subject>." format. Their answer letters rotate A-D: RouteLLM's
  data carries no MMLU reference letters, and the letter does not change what is asked.
- `system_prompt`: a chat transcript (`core.classification.chat_text`) with a 1,400-character system prompt first.
- `rag`: three retrieved passages (GSM8K train-split solutions) under a "Context:" label, then "Question: <q>".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from core.classification import chat_text
from tools.classifier_training.data import RoutedPrompt

WRAPPINGS = ("few_shot", "system_prompt", "rag")
SHOTS = 5
PASSAGES = 3
SYSTEM_PROMPT = (
    "You are a careful, friendly assistant deployed by an enterprise platform team. Follow these rules in every "
    "answer. 1. Answer the user's question directly and completely; do not ask for clarification unless the "
    "question cannot be answered as asked. 2. Be concise: prefer short paragraphs and lists, and never repeat the "
    "question back. 3. When a question involves numbers, show the key steps of the calculation so that a reviewer "
    "can check them, and state units. 4. When a question offers answer choices, name the letter of the choice you "
    "pick and explain briefly why the others are wrong. 5. Never invent sources, quotations, prices or statistics; "
    "if you are unsure, say what you would need to know. 6. Keep personal data out of your answers: do not repeat "
    "names, addresses, account numbers or card numbers that appear in a message. 7. Use a neutral, professional "
    "tone, with no emojis and no marketing language. 8. If a request is unsafe, illegal or against policy, refuse "
    "in one sentence and offer a safe alternative. 9. Format code in fenced blocks with the language named. "
    "10. When you are done, stop: no closing questions, no offers of further help."
)


def gsm8k_solutions(data_dir: Path, count: int) -> list[tuple[str, str]]:
    """The first `count` (question, reference solution) pairs of GSM8K's train split (data/gsm8k/train.jsonl)."""
    with (data_dir / "gsm8k" / "train.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle, strict=False)]
    return [(row["question"], row["answer"]) for row in rows]


def wrappers(data_dir: Path, train_prompts: list[RoutedPrompt]) -> dict[str, Callable[[RoutedPrompt], str]]:
    """One function per `WRAPPINGS` name: a held-out prompt in, the wrapped text the router would classify out.

    `train_prompts` (the classifier's complexity training split) supply the MMLU examples, from the same subject
    where it has five.
    """
    solutions = gsm8k_solutions(data_dir, SHOTS + PASSAGES)
    gsm8k_shots = "\n\n".join(f"Question: {q}\nAnswer: {a}" for q, a in solutions[:SHOTS])
    passages = "\n\n".join(f"[{index + 1}] {answer}" for index, (_, answer) in enumerate(solutions[SHOTS:]))
    mmlu_by_subject: dict[str, list[str]] = {}
    for prompt in train_prompts:
        if prompt.dataset == "mmlu":
            mmlu_by_subject.setdefault(prompt.subject, []).append(prompt.prompt)
    every_mmlu = [text for texts in mmlu_by_subject.values() for text in texts]

    def few_shot(prompt: RoutedPrompt) -> str:
        if prompt.dataset == "gsm8k":
            return f"{gsm8k_shots}\n\nQuestion: {prompt.prompt}\nAnswer:"
        examples = mmlu_by_subject.get(prompt.subject, [])
        examples = (examples if len(examples) >= SHOTS else every_mmlu)[:SHOTS]
        subject = prompt.subject.replace("_", " ")
        shots = "\n\n".join(f"{text} {'ABCD'[index % 4]}" for index, text in enumerate(examples))
        return f"The following are multiple choice questions (with answers) about {subject}.\n\n{shots}\n\n{prompt.prompt}"

    def system_prompt(prompt: RoutedPrompt) -> str:
        return chat_text((("system", SYSTEM_PROMPT), ("user", prompt.prompt)))

    def rag(prompt: RoutedPrompt) -> str:
        return f"Context:\n{passages}\n\nQuestion: {prompt.prompt}"

    return {"few_shot": few_shot, "system_prompt": system_prompt, "rag": rag}
