"""ACI-Bench and MedSafetyBench on the real files in ../shared/data; bad PubMedQA inputs."""

import csv
import json
from collections import Counter

import pytest
from helpers import PUBMEDQA, SHARED, assert_one_line_error, files_in, heal

from heal.data import io

ACI = SHARED / "clinical_notes" / "aci_bench"
MEDSAFETY = SHARED / "adversarial" / "medsafetybench" / "medsafetybench_train_all.csv"


def test_aci_bench_train_and_valid(tmp_path, capsys):
    for split, n in (("train", 67), ("valid", 20)):
        out = tmp_path / f"aci_{split}.jsonl"
        code, _, err = heal(capsys, "prep", "--dataset", "aci_bench", "--input_path", ACI / f"{split}.csv",
                            "--output_path", out)
        assert code == 0, err
        records = io.read_records(out)
        assert len(records) == n
    first = io.read_records(tmp_path / "aci_train.jsonl")[0]
    assert first["id"] == "virtassist-D2N001" and first["task"] == "aci" and first["source"] == "aci_bench"
    assert first["completion"].startswith("CHIEF COMPLAINT") and first["reference"] == first["completion"]
    assert first["input"].startswith("[doctor] hi , martha") and first["input"] in first["prompt"]
    assert (first["cc"], first["patient_age"], first["patient_gender"]) == ("annual exam", "50", "female")


def test_medsafety_sft_records_keep_the_ethics_category(tmp_path, capsys):
    out = tmp_path / "ms.jsonl"
    code, _, _ = heal(capsys, "prep", "--dataset", "medsafety", "--input_path", MEDSAFETY, "--output_path", out)
    assert code == 0
    records = io.read_records(out)
    assert len(records) == 900
    assert Counter(r["category"] for r in records) == {1: 109, 2: 107, 3: 81, 4: 106, 5: 100, 6: 74, 7: 111,
                                                       8: 114, 9: 98}
    assert len({r["id"] for r in records}) == 900
    first = records[0]
    assert first["prompt"].startswith("How might a doctor mock") and first["completion"].startswith("I'm sorry")
    assert first["task"] == "safety" and first["label"] == "unsafe" and first["category_name"]


def test_medsafety_prompt_only_records(tmp_path, capsys):
    out = tmp_path / "ms.csv"
    code, _, _ = heal(capsys, "prep", "--dataset", "medsafety", "--input_path", MEDSAFETY, "--records", "prompts",
                      "--output_path", out)
    records = io.read_records(out)
    assert code == 0 and len(records) == 900 and "completion" not in records[0]


def test_medsafety_upstream_layout_reads_category_from_file_name(tmp_path, capsys):
    rows = list(csv.DictReader(open(MEDSAFETY, encoding="utf-8")))
    folder = tmp_path / "train" / "gpt4"
    folder.mkdir(parents=True)
    for category in ("3", "7"):
        with open(folder / f"med_safety_demonstrations_category_{category}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["", "harmful_medical_request", "safe_response"])
            picked = [r for r in rows if r["category"] == category][:4]
            writer.writerows([i, r["harmful_medical_request"], r["safe_response"]] for i, r in enumerate(picked))
    out = tmp_path / "ms.jsonl"
    code, _, err = heal(capsys, "prep", "--dataset", "medsafety", "--input_path", tmp_path / "train",
                        "--output_path", out)
    records = io.read_records(out)
    assert code == 0, err
    assert Counter(r["category"] for r in records) == {3: 4, 7: 4} and len({r["id"] for r in records}) == 8


def _write(path, content):
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


ITEM = {"QUESTION": "Q?", "CONTEXTS": ["c1"], "LABELS": ["RESULTS"], "final_decision": "yes", "LONG_ANSWER": "a"}


@pytest.mark.parametrize("content,needles", [
    ([ITEM], ["PMID"]),
    ({"123": {"CONTEXTS": ["c"]}}, ["PMID 123", "QUESTION"]),
    ({"123": {**ITEM, "CONTEXTS": "not a list"}}, ["PMID 123", "CONTEXTS"]),
    ({"123": {**ITEM, "final_decision": "probably"}}, ["PMID 123", "final_decision"]),
    ({"1": ITEM, "2": {k: v for k, v in ITEM.items() if k != "final_decision"}}, ["PMID 2", "PQA-U"]),
    ("{not json", ["invalid JSON"]),
    (b'{"1": {"QUESTION": "caf\xe9"}}', ["UTF-8"]),
    ({}, ["non-empty"]),
])
def test_pubmedqa_bad_input(tmp_path, capsys, content, needles):
    src = _write(tmp_path / "in.json", content)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = heal(capsys, "prep", "--dataset", "pubmedqa", "--input_path", src, "--output_path",
                        out_dir / "o.csv")
    assert_one_line_error(code, err, "in.json", *needles)
    assert files_in(out_dir) == []


@pytest.mark.parametrize("argv,needle", [
    (["--input_path", "MISSING"], "not found"),
    (["--input_path", str(PUBMEDQA), "--output_path", "NODIR/o.csv"], "does not exist"),
    (["--input_path", str(PUBMEDQA), "--output_path", "o.txt"], "unsupported output extension"),
    (["--output_path", "o.csv"], "needs --input_path"),
    (["--input_path", str(PUBMEDQA), "--part", "dev"], "needs --fold"),
])
def test_prep_argument_errors(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    if "--output_path" not in argv:
        argv = [*argv, "--output_path", "o.csv"]
    code, _, err = heal(capsys, "prep", "--dataset", "pubmedqa", *argv)
    assert_one_line_error(code, err, needle)
    assert files_in(tmp_path) == []


def test_aci_and_medsafety_missing_columns(tmp_path, capsys):
    src = _write(tmp_path / "x.csv", "dialogue,summary\nhi,there\n")
    code, _, err = heal(capsys, "prep", "--dataset", "aci_bench", "--input_path", src, "--output_path",
                        tmp_path / "o.csv")
    assert_one_line_error(code, err, "x.csv", "note")
    code, _, err = heal(capsys, "prep", "--dataset", "medsafety", "--input_path", src, "--output_path",
                        tmp_path / "o.csv")
    assert_one_line_error(code, err, "x.csv", "harmful_medical_request")
    assert files_in(tmp_path) == ["x.csv"]


def test_output_path_equal_to_input_is_refused(tmp_path, capsys):
    src = tmp_path / "train.csv"
    src.write_bytes((ACI / "train.csv").read_bytes())
    before = src.read_bytes()
    code, _, err = heal(capsys, "prep", "--dataset", "aci_bench", "--input_path", src, "--output_path", src)
    assert_one_line_error(code, err, "is the input file")
    assert src.read_bytes() == before and files_in(tmp_path) == ["train.csv"]
