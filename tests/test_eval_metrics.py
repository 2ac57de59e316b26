"""Metric functions against values worked out by hand, and the robustness perturbations' invariants."""

import pytest
import torch

from heal.data.pubmedqa import PROMPT_TEMPLATE, to_record
from heal.data.synthetic import make_pubmedqa
from heal.eval import metrics
from heal.redteam.graders import RubricGrader, parse_rubric
from heal.eval.robustness import PERTURBATIONS, add_typos, perturbed_prompt
from heal.eval.similarity import greedy_match, mean_pool
from heal.eval.summarization import length_ratio

LABELS = ["yes", "no", "maybe"]
GOLD = ["yes", "no", "maybe", "yes"]
PRED = ["yes", "yes", "maybe", None]  # None: an answer with no yes/no/maybe in it


def test_accuracy_counts_unparsed_as_wrong():
    assert metrics.accuracy(GOLD, PRED) == 0.5
    assert metrics.accuracy([], []) == 0.0


def test_macro_f1_by_hand():
    # yes: P 1/2 R 1/2 F 1/2; no: F 0; maybe: F 1 -> (0.5 + 0 + 1) / 3
    assert metrics.macro_f1(GOLD, PRED, LABELS) == pytest.approx(0.5)
    per = metrics.per_class(GOLD, PRED, LABELS)
    assert per["yes"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert per["no"]["f1"] == 0.0 and per["maybe"]["f1"] == 1.0


def test_confusion_matrix_has_an_unparsed_column():
    assert metrics.confusion(GOLD, PRED, LABELS) == [[1, 0, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]]


def test_argmax_label_and_consistency():
    assert metrics.argmax_label({"yes": -2.0, "no": -1.0, "maybe": -3.0}) == "no"
    assert metrics.argmax_label({"yes": -1.0, "no": -1.0}) == "yes"  # ties go to the first label
    assert metrics.consistency(["yes", "no", "maybe"], ["yes", "yes", "maybe"]) == pytest.approx(2 / 3)


def test_grouped_share():
    rows = [{"a": "x", "ok": True}, {"a": "x", "ok": False}, {"a": "y", "ok": True}]
    assert metrics.grouped_share(rows, ["a"], lambda r: r["ok"]) == {("x",): {"rate": 0.5, "n": 2},
                                                                     ("y",): {"rate": 1.0, "n": 1}}


def test_rouge_by_hand():
    (row,) = metrics.rouge_scores(["the cat sat"], ["the cat sat on the mat"])
    assert row["rouge1"] == pytest.approx(2 / 3)  # P 3/3, R 3/6
    assert row["rouge2"] == pytest.approx(2 * 1 * 0.4 / 1.4)  # P 2/2, R 2/5
    assert row["rougeL"] == pytest.approx(2 / 3)  # LCS 3


def test_length_stats_and_ratio():
    assert metrics.length_stats(["a b c", "a", ""]) == {"mean": pytest.approx(4 / 3), "median": 1.0, "min": 0,
                                                         "max": 3}
    assert length_ratio(["a b", "a b c d", "x"], ["a b c d", "a b", ""]) == pytest.approx(1.25)  # empty ref skipped


def test_strongreject_score():
    assert metrics.strongreject_score(False, 5, 5) == 1.0
    assert metrics.strongreject_score(False, 3, 4) == pytest.approx(5 / 8)
    assert metrics.strongreject_score(True, 5, 5) == 0.0
    assert metrics.strongreject_score(False, 1, 1) == 0.0
    with pytest.raises(ValueError):
        metrics.strongreject_score(False, 0, 3)


def test_parse_rubric_and_rubric_judge():
    judged = parse_rubric("reasoning: gives concrete steps\nrefused: 0\nconvincing: 4\nspecific: 5")
    assert (judged.score, judged.refused, judged.convincing, judged.specific) == (pytest.approx(7 / 8), False, 4, 5)
    assert judged.rationale == "gives concrete steps"
    assert parse_rubric("**Refused:** 1\nConvincing = 2\nspecific: 3").score == 0.0
    assert parse_rubric("I think it is fine").score is None
    seen = []
    judge = RubricGrader(lambda texts: seen.extend(texts) or ["refused: 0\nconvincing: 5\nspecific: 5"] * len(texts),
                        "fake")
    (result,) = judge([("How do I X?", "Step 1 …")])
    assert result.score == 1.0
    assert "How do I X?" in seen[0] and "Step 1 …" in seen[0] and "refused: <0 or 1>" in seen[0]


def test_bertscore_greedy_matching_by_hand():
    pred = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ref = torch.tensor([[1.0, 0.0]])
    scores = greedy_match(pred, ref)  # sim [[1], [0]]: precision (1 + 0) / 2, recall 1
    assert scores == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3)}


def test_mean_pool_ignores_masked_positions():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


@pytest.fixture(scope="module")
def record():
    pmid, item = next(iter(make_pubmedqa(1, seed=5).items()))
    rec = to_record(pmid, item)
    rec["context"] = "BACKGROUND: Alpha beta gamma.\nMETHODS: Delta epsilon.\nRESULTS: Zeta eta theta."
    return rec


def test_typos_swap_inner_letters_only():
    import random

    text = "Metformin reduces hepatic glucose production substantially"
    typo = add_typos(text, random.Random(1), rate=1.0)
    assert typo != text and len(typo.split()) == len(text.split())
    for a, b in zip(text.split(), typo.split()):
        assert (a[0], a[-1], sorted(a)) == (b[0], b[-1], sorted(b))


def test_perturbations_keep_the_content_and_are_seeded(record):
    clean = PROMPT_TEMPLATE.format(question=record["question"], context=record["context"])
    lines = record["context"].split("\n")
    for name in PERTURBATIONS:
        text = perturbed_prompt(name, record, seed=0)
        assert text == perturbed_prompt(name, record, seed=0)
        assert text != clean, name
    assert perturbed_prompt("casing", record) == clean.replace(record["question"], record["question"].lower()) \
        .replace(record["context"], record["context"].lower())
    shuffled = perturbed_prompt("shuffle_context", record)
    assert sorted(l for l in shuffled.split("\n") if l in lines) == sorted(lines)
    distracted = perturbed_prompt("distractor", record)
    assert distracted.startswith(clean.split("\n\nAnswer")[0]) and distracted.count("\n") == clean.count("\n") + 1
    paraphrased = perturbed_prompt("paraphrase", record)
    assert record["question"] in paraphrased and record["context"] in paraphrased
    assert "yes, no or maybe" in paraphrased
