"""Robustness: PubMedQA accuracy under input perturbations that do not change the answer.

    from heal.eval.robustness import PERTURBATIONS, perturbed_prompt
    text = perturbed_prompt("typos", record, seed=0)    # the record's prompt with a few adjacent letters swapped

Each perturbation rewrites the question and/or the context of a PubMedQA record and renders the prompt with the same
template `heal prep` used (or, for `paraphrase`, a reworded one). The gold label stays valid: a careful human reader
would answer the perturbed item the same way. `heal eval --robustness` reports, per perturbation, the accuracy, the
drop from clean accuracy, and the consistency rate (the share of items whose prediction did not change) — a model
can keep its accuracy while flipping many answers, which consistency exposes.

The perturbations follow common practice in robustness evaluation of QA models (e.g. Ribeiro et al. 2020,
"Beyond Accuracy: Behavioral Testing of NLP Models with CheckList": typos, irrelevant additions, invariance tests).
"""

from __future__ import annotations

import random
import re
from typing import Callable

from heal.data.pubmedqa import PROMPT_TEMPLATE

TYPO_RATE = 0.1  # share of eligible words (4+ letters) that get one adjacent-letter swap

_PARAPHRASES = (
    "Read the abstract below, then decide: {question}\n\nAbstract:\n{context}\n\n"
    "Reply with yes, no or maybe first, then give your reasoning.",
    "Research question: {question}\n\nEvidence from the study:\n{context}\n\n"
    "Does the evidence support the answer yes, no or maybe? State the answer, then explain.",
    "Context:\n{context}\n\nBased on the context above, answer the question \"{question}\" "
    "with yes, no or maybe, then explain.",
)

# Sentences that are true-sounding, medical in register, and irrelevant to any PubMedQA question.
_DISTRACTORS = (
    "The study protocol was printed on recycled paper.",
    "The hospital cafeteria was renovated in the year the study began.",
    "Several of the investigators attended the same medical school.",
    "Data entry was performed on weekday mornings.",
    "The ethics committee meets on the first Tuesday of each month.",
    "The research office moved to a new building during the study period.",
)


def _swap_inside(word: str, rng: random.Random) -> str:
    """Swap two adjacent inner letters, keeping the first and last letter (words stay readable)."""
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def add_typos(text: str, rng: random.Random, rate: float = TYPO_RATE) -> str:
    return re.sub(r"[A-Za-z]{4,}", lambda m: _swap_inside(m.group(0), rng) if rng.random() < rate else m.group(0),
                  text)


def typos(question: str, context: str, rng: random.Random) -> str:
    return PROMPT_TEMPLATE.format(question=add_typos(question, rng), context=add_typos(context, rng))


def casing(question: str, context: str, rng: random.Random) -> str:
    return PROMPT_TEMPLATE.format(question=question.lower(), context=context.lower())


def distractor(question: str, context: str, rng: random.Random) -> str:
    return PROMPT_TEMPLATE.format(question=question, context=f"{context}\n{rng.choice(_DISTRACTORS)}")


def shuffle_context(question: str, context: str, rng: random.Random) -> str:
    """Reorder the abstract's sections (one per line); a reordering is always different when there are 2+."""
    lines = context.split("\n")
    if len(lines) > 1:
        order = list(range(len(lines)))
        while order == sorted(order):
            rng.shuffle(order)
        lines = [lines[i] for i in order]
    return PROMPT_TEMPLATE.format(question=question, context="\n".join(lines))


def paraphrase(question: str, context: str, rng: random.Random) -> str:
    return rng.choice(_PARAPHRASES).format(question=question, context=context)


PERTURBATIONS: dict[str, Callable[[str, str, random.Random], str]] = {
    "typos": typos,
    "casing": casing,
    "distractor": distractor,
    "shuffle_context": shuffle_context,
    "paraphrase": paraphrase,
}
REQUIRED_COLUMNS = ("question", "context")


def perturbed_prompt(name: str, record: dict, seed: int = 0) -> str:
    """The prompt for `record` under perturbation `name`, seeded by the record id (same run, same text)."""
    rng = random.Random(f"{seed}|{name}|{record.get('id', '')}")
    return PERTURBATIONS[name](str(record["question"]).strip(), str(record["context"]), rng)
