"""`heal annotate`'s pure parts: agreement statistics against hand-worked values, the export rule, and reading pairs
from every file HEAL writes or reads."""

from __future__ import annotations

import json

import pytest
from annotate_fixtures import write_pairs
from helpers import SHARED

from heal.annotate.agreement import cohen_kappa, fleiss_kappa, fleiss_over, judge_agreement, resolve
from heal.annotate.pairs import load_pairs
from heal.errors import HealError


def test_fleiss_kappa_small_example_worked_by_hand():
    # 3 items, 2 raters, 2 categories: P_i = 1, 1, 0 → P̄ = 2/3; p = (1/2, 1/2) → P̄_e = 1/2;
    # κ = (2/3 − 1/2) / (1 − 1/2) = 1/3
    assert fleiss_kappa([[2, 0], [0, 2], [1, 1]]) == pytest.approx(1 / 3)


def test_fleiss_kappa_textbook_example():
    # the 10 subjects × 14 raters × 5 categories example of Fleiss' kappa's Wikipedia article: P̄ = 0.378,
    # P̄_e = 0.213, κ = 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)


def test_fleiss_kappa_edge_cases():
    assert fleiss_kappa([[2, 0], [2, 0]]) is None  # one category only: undefined
    assert fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fleiss_kappa([[2, 0], [1, 2]])


def test_cohen_kappa_hand_worked_and_fleiss_over_uneven_pairs():
    # raters agree on 3 of 4: p_o = 3/4; marginals a: (2 ans1, 2 ans2), b: (1, 3) → p_e = (2·1 + 2·3)/16 = 1/2
    a, b = ["answer_1", "answer_1", "answer_2", "answer_2"], ["answer_1", "answer_2", "answer_2", "answer_2"]
    assert cohen_kappa(a, b) == pytest.approx((3 / 4 - 1 / 2) / (1 - 1 / 2))
    assert cohen_kappa(["tie", "tie"], ["tie", "tie"]) is None
    labels = {1: {"x": "answer_1", "y": "answer_1"}, 2: {"x": "answer_2", "y": "answer_2"},
              3: {"x": "answer_1", "y": "answer_2"}, 4: {"x": "tie"}, 5: {"x": "tie", "y": "tie", "z": "tie"}}
    result = fleiss_over(labels)  # the 3 pairs with 2 labels (the most common count): the 3-item example above
    assert result == {"kappa": pytest.approx(1 / 3), "pairs": 3, "raters_per_pair": 2}


def test_judge_agreement_counts_decisive_labels_and_kappa():
    labels = {1: {"x": "answer_1", "y": "answer_1"}, 2: {"x": "answer_2", "y": "tie"}, 3: {"x": "answer_1"}}
    result = judge_agreement(labels, {1: 1, 2: 1})  # pair 3 has no verdict
    assert result["pairs"] == 2 and result["labels"] == 4 and result["decisive_labels"] == 3
    assert result["agreement"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("choices,phi,min_labels,expected", [
    (["answer_1", "answer_1"], False, 1, ("answer_1", "exported")),
    (["answer_2", "tie"], False, 1, ("answer_2", "exported")),  # a tie counts for neither
    (["answer_1", "answer_2"], False, 1, (None, "no_majority")),
    (["tie", "tie"], False, 1, (None, "no_majority")),
    (["answer_1", "both_unsafe"], False, 1, (None, "both_unsafe")),  # unsafe as common as the winner
    (["both_unsafe", "both_unsafe", "answer_1"], False, 1, (None, "both_unsafe")),
    (["answer_1", "answer_1", "both_unsafe"], False, 1, ("answer_1", "exported")),
    (["answer_1"], False, 2, (None, "too_few_labels")),
    (["answer_1", "answer_1"], True, 1, (None, "phi_flagged")),
])
def test_export_rule(choices, phi, min_labels, expected):
    assert resolve(choices, phi, min_labels) == expected


def test_export_rule_can_keep_phi_flagged_pairs_when_asked():
    assert resolve(["answer_2"], True, include_phi_flagged=True) == ("answer_2", "exported")


def test_heal_label_output_carries_the_ai_verdict(tmp_path):
    pairs, credentialed = load_pairs(write_pairs(tmp_path / "p.jsonl", n=3, judged=True))
    assert [p.ai_choice for p in pairs] == [1, 1, 1] and pairs[0].ai_judge == "rule:refusal"
    assert "rationale" not in pairs[0].extra and pairs[0].extra == {"id": "q0", "task": "safety"}
    assert not credentialed


def test_human_preference_files_load_without_a_verdict():
    pairs, _ = load_pairs(SHARED / "preferences" / "hh_rlhf_harmless_base_test_medical_subset.jsonl")
    assert len(pairs) == 102 and all(p.ai_choice is None for p in pairs)
    assert not pairs[0].prompt.startswith("Human:") and "Assistant:" not in pairs[0].answer_1  # transcripts split


def test_candidate_files_give_every_two_distinct_answers(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"id": "a", "prompt": "Is fever dangerous?", "candidates": ["x", "y", "z", "x", " "]},
            {"id": "b", "prompt": "Dose?", "completions": ["p", "q"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs, _ = load_pairs(path)
    assert [(p.answer_1, p.answer_2) for p in pairs] == [("x", "y"), ("x", "z"), ("y", "z"), ("p", "q")]
    csv = tmp_path / "c.csv"
    csv.write_text('prompt,candidates\nQ,"[""one"", ""two""]"\n')
    assert [(p.answer_1, p.answer_2) for p in load_pairs(csv)[0]] == [("one", "two")]


def test_mimic_pairs_are_marked_credentialed(tmp_path):
    _, credentialed = load_pairs(write_pairs(tmp_path / "m.jsonl", n=2, source="mimic"))
    assert credentialed
    plain = write_pairs(tmp_path / "n.jsonl", n=2)
    (tmp_path / "n.jsonl.meta.json").write_text(json.dumps({"credentialed": True}))
    assert load_pairs(plain)[1]


@pytest.mark.parametrize("content,needle", [
    ("", "no records"), ("{not json\n", "line 1"), ('{"prompt": "q", "answer": "a"}\n', "no preference columns"),
    ('{"prompt": "q", "candidates": "just text"}\n', "must be a list"),
    ('{"prompt": "q", "chosen": "same", "rejected": "same"}\n', "identical"),
])
def test_malformed_pair_files_name_the_problem(tmp_path, content, needle):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(HealError, match=needle):
        load_pairs(path)
