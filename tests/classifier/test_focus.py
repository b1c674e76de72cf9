"""The classifier scores the question, not its wrapping: the focus rules, and wrapped held-out questions."""

import json

import pytest

from core.classification import chat_text
from core.classifier_model.artifact import DEFAULT_ARTIFACT_DIR
from core.classifier_model.focus import focus
from core.classifier_model.model import ClassifierModel
from core.vocabulary import ComplexityTier
from tools.classifier_training.train import DEFAULT_SEED
from tools.classifier_training.training_data import build_training_sets
from tools.classifier_training.wrapping import WRAPPINGS, wrappers
from tools.paths import DATA_DIR, REPO_ROOT

QUESTION = "A shop sells 3 pens for $4. How much do 12 pens cost?"
STEP = {tier: step for step, tier in enumerate(ComplexityTier.known())}


@pytest.fixture(scope="module")
def sets():
    return build_training_sets(DATA_DIR, DEFAULT_SEED)


@pytest.fixture(scope="module")
def model() -> ClassifierModel:
    return ClassifierModel.load(DEFAULT_ARTIFACT_DIR)


def test_a_bare_question_is_left_as_it_is() -> None:
    assert focus(QUESTION).text == QUESTION and not focus(QUESTION).wrapped
    # One marker without context, or an answer cue with nothing after it, is part of the question.
    for text in (f"Question: {QUESTION}", f"{QUESTION}\nAnswer:", f"Q: {QUESTION}\nA:"):
        assert focus(text).text == text


def test_a_transcript_is_scored_by_its_last_user_turn() -> None:
    text = chat_text([("system", "You are terse."), ("user", "hi"), ("assistant", "Hello."), ("user", QUESTION)])
    assert focus(text).text == f"user: {QUESTION}" and focus(text).wrapped
    assert focus(f"user: {QUESTION}").wrapped is False  # one turn: what the router classifies for one message
    # The encoder reads the question as it was trained on it: without the transcript's role prefix.
    assert focus(text).bare_text == focus(f"user: {QUESTION}").bare_text == focus(QUESTION).bare_text == QUESTION
    # A text that merely mentions a role later on is not a transcript.
    mentions = f"Translate this.\nuser: {QUESTION}"
    assert focus(mentions).wrapped is False and focus(mentions).bare_text == mentions


def test_worked_examples_and_retrieved_passages_are_set_aside() -> None:
    shots = "Question: 2 + 2?\nAnswer: 4\n\nQuestion: 3 + 5?\nAnswer: 8"
    assert focus(f"{shots}\n\nQuestion: {QUESTION}").text == QUESTION
    assert focus(f"Context:\n[1] Pens are sold in packs.\n\nQuestion: {QUESTION}").text == QUESTION
    mmlu = "Which is a noble gas?\nA. Neon\nB. Iron\nAnswer: A\n\nWhich is a metal?\nA. Neon\nB. Iron\nAnswer:"
    assert focus(mmlu).text == "Which is a metal?\nA. Neon\nB. Iron\nAnswer:"


def test_no_training_or_evaluation_text_is_changed(sets) -> None:
    texts = [p.prompt for split in sets.complexity.values() for p in split]
    texts += [e.text for split in sets.intent.values() for e in split]
    assert [text for text in texts if focus(text).bare_text != text] == []  # what the encoder was trained on
    for path in ("deploy/profiler/real-eval.jsonl", "benchmarks/data/routing-heldout.jsonl"):
        for line in (REPO_ROOT / path).read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            texts.append(chat_text((turn["role"], turn["content"]) for turn in item["messages"]))
    assert len(texts) > 30_000
    assert [text for text in texts if focus(text).wrapped] == []


@pytest.mark.parametrize("wrapping", WRAPPINGS)
def test_a_wrapped_held_out_question_keeps_its_score_and_tier(sets, model, wrapping: str) -> None:
    """Tolerance: the score moves by less than 0.1, the tier by at most one step (measured: at most 0.06)."""
    prompts = [p for p in sets.complexity["test"] if p.dataset == "gsm8k"][:150]
    prompts += [p for p in sets.complexity["test"] if p.dataset == "mmlu"][:150]
    wrap = wrappers(DATA_DIR, sets.complexity["train"])[wrapping]
    bare = model.classify_batch([p.prompt for p in prompts])
    wrapped = model.classify_batch([wrap(p) for p in prompts])
    for prompt, alone, inside in zip(prompts, bare, wrapped, strict=True):
        assert inside.question_focused, wrap(prompt)[:200]
        assert abs(inside.needs_strong_model_probability - alone.needs_strong_model_probability) < 0.1
        assert abs(STEP[inside.tier] - STEP[alone.tier]) <= 1
        assert inside.estimated_input_tokens > alone.estimated_input_tokens  # the whole text is still counted
