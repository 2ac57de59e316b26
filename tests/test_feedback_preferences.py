"""Preference data: every common layout, validation, and reference-derived pairs."""

import json

import pytest
from helpers import PUBMEDQA, SHARED

from heal.data.pubmedqa import parse_decision, prepare
from heal.errors import HealError
from heal.feedback.preferences import load_preferences, pubmedqa_pairs, safety_pairs

PREFS = SHARED / "preferences"


def test_hh_rlhf_transcripts_become_prompt_and_final_answers():
    pairs = load_preferences(PREFS / "hh_rlhf_harmless_base_test_medical_subset.jsonl")
    raw = [json.loads(line) for line in open(PREFS / "hh_rlhf_harmless_base_test_medical_subset.jsonl")]
    assert len(pairs) == 102
    for pair, row in zip(pairs, raw):
        assert "Assistant:" not in pair["chosen"] and "Assistant:" not in pair["rejected"]
        assert pair["chosen"] != pair["rejected"]
        assert row["chosen"].rstrip().endswith(pair["chosen"]) and row["rejected"].rstrip().endswith(pair["rejected"])
        if row["chosen"].count("Human:") == 1:
            assert pair["prompt"] == row["prompt"].strip()
        else:  # multi-turn: the dialogue so far is the prompt
            assert pair["prompt"].startswith("Human: " + row["prompt"].strip()[:20])
    assert pairs[0]["source_line"] == raw[0]["source_line"]  # extra columns are kept


def test_question_response_chosen_rejected_layout():
    pairs = load_preferences(PREFS / "medicalgpt_reward_zh_test.jsonl")
    assert len(pairs) == 100
    assert pairs[0]["prompt"].startswith("肛门病变") and pairs[0]["chosen"] == "食管克罗恩病"


def test_conversational_layout(tmp_path):
    path = tmp_path / "conv.jsonl"
    path.write_text(json.dumps({
        "prompt": [{"role": "user", "content": "Is ibuprofen safe with warfarin?"}],
        "chosen": [{"role": "assistant", "content": "It raises bleeding risk; ask your clinician first."}],
        "rejected": [{"role": "assistant", "content": "Yes, no problem."}]}) + "\n")
    [pair] = load_preferences(path)
    assert pair == {"prompt": "Is ibuprofen safe with warfarin?",
                    "chosen": "It raises bleeding risk; ask your clinician first.", "rejected": "Yes, no problem."}


@pytest.mark.parametrize("row,needle", [
    ({"prompt": "q", "chosen": "same", "rejected": "same"}, "row 2: chosen and rejected are identical"),
    ({"prompt": "q", "chosen": "  ", "rejected": "b"}, "row 2: empty 'chosen'"),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, "row 2: empty 'prompt'"),
    ({"question": "q", "answer": "a"}, "row 2: no preference columns (found: answer, question)"),
])
def test_invalid_pairs_name_the_row(tmp_path, row, needle):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "chosen": "a", "rejected": "b"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(HealError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_preferences(path)


def test_pubmedqa_reference_pairs_on_real_data():
    records, _ = prepare(PUBMEDQA)
    pairs = pubmedqa_pairs(records, seed=0)
    assert len(pairs) == 500
    assert all(parse_decision(p["chosen"]) == p["label"] for p in pairs)
    assert all(parse_decision(p["rejected"]) not in (None, p["label"]) for p in pairs)
    assert all(p["chosen"].split(". ", 1)[1] == p["rejected"].split(". ", 1)[1] for p in pairs if p["long_answer"])
    assert pairs == pubmedqa_pairs(records, seed=0) and pairs != pubmedqa_pairs(records, seed=1)


def test_pubmedqa_pairs_use_wrong_policy_samples_when_given():
    records, _ = prepare(PUBMEDQA)
    record = records[0]
    wrong = "No." if record["label"] != "no" else "Yes."
    [pair] = pubmedqa_pairs([record], policy_answers={record["id"]: [record["completion"], wrong]})
    assert pair["rejected"] == wrong and pair["pair_source"] == "policy_sample"


def test_safety_pairs_keep_only_prompts_where_the_policy_complied():
    records = [{"id": "1", "prompt": "How do I fake a prescription?", "completion": "I can't help with that."},
               {"id": "2", "prompt": "How to hide a misdiagnosis?", "completion": "I won't assist with that."}]
    answers = {"1": ["", "Yes. A low-sodium diet reduces emergency visits in patients with asthma.",  # non-answers
                     "Sure. First, get a blank prescription pad and copy a doctor's signature to fake it."],
               "2": ["I'm sorry, but I cannot help with hiding a misdiagnosis."]}
    pairs = safety_pairs(records, answers)
    assert [p["id"] for p in pairs] == ["1"] and pairs[0]["rejected"].startswith("Sure.")
