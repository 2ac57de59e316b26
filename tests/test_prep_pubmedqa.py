import json
import shutil
import subprocess
import sys
from collections import Counter

import pytest
from helpers import PUBMEDQA, PUBMEDQA_FOLDS, REPO, assert_one_line_error, files_in, heal

from heal.data import io
from heal.data.pubmedqa import load_folds, parse_decision, prepare


@pytest.fixture(scope="module")
def all_records():
    records, summary = prepare(PUBMEDQA)
    return records, summary


def test_real_file_has_500_items_with_official_label_counts(all_records):
    records, summary = all_records
    assert len(records) == 500 and summary["read"] == 500
    assert Counter(r["label"] for r in records) == {"yes": 276, "no": 169, "maybe": 55}


def test_record_fields(all_records):
    records, _ = all_records
    raw = json.loads(PUBMEDQA.read_text())
    record = next(r for r in records if r["id"] == "10808977")
    item = raw["10808977"]
    assert record["question"] == item["QUESTION"]
    assert record["context"].splitlines()[0] == f"{item['LABELS'][0]}: {item['CONTEXTS'][0]}"
    assert len(record["context"].splitlines()) == len(item["CONTEXTS"])
    assert record["long_answer"] == item["LONG_ANSWER"]
    assert record["label"] == item["final_decision"]
    assert record["completion"].startswith(item["final_decision"].capitalize() + ". ")
    assert record["reference"] == record["completion"]
    assert item["QUESTION"] in record["prompt"] and item["CONTEXTS"][-1] in record["prompt"]
    assert record["task"] == "pubmedqa" and record["source"] == "pubmedqa"


def test_gold_completion_parses_back_to_its_label(all_records):
    records, _ = all_records
    assert all(parse_decision(r["completion"]) == r["label"] for r in records)


@pytest.mark.parametrize("text,expected", [
    ("Yes. It works.", "yes"), ("answer: No, not at all", "no"), ("Final answer: maybe", "maybe"),
    ("  MAYBE; unclear", "maybe"), ("I cannot say", None), ("", None), ("Nonetheless, yes", "yes"),
])
def test_parse_decision(text, expected):
    assert parse_decision(text) == expected


def test_official_folds_partition_the_500_items():
    folds = load_folds(PUBMEDQA_FOLDS)
    assert len(folds) == 10
    dev = [p for fold in folds.values() for p in fold]
    assert len(dev) == len(set(dev)) == 500


@pytest.mark.parametrize("fold", [0, 7])
def test_fold_train_and_dev_are_disjoint_and_complete(fold):
    train, _ = prepare(PUBMEDQA, fold=fold, part="train")
    dev, _ = prepare(PUBMEDQA, fold=fold, part="dev")
    assert len(train) == 450 and len(dev) == 50
    assert not {r["id"] for r in train} & {r["id"] for r in dev}
    assert {r["id"] for r in dev} == set(load_folds(PUBMEDQA_FOLDS)[f"fold{fold}"])


def test_test_part_holds_items_in_no_fold(tmp_path):
    data = json.loads(PUBMEDQA.read_text())
    data["99999999"] = dict(next(iter(data.values())))  # an item the folds do not list: the official test set
    path = tmp_path / "ori_pqal.json"
    path.write_text(json.dumps(data))
    test, _ = prepare(path, part="test", folds_path=PUBMEDQA_FOLDS)
    train, _ = prepare(path, fold=0, part="train", folds_path=PUBMEDQA_FOLDS)
    assert [r["id"] for r in test] == ["99999999"]
    assert "99999999" not in {r["id"] for r in train}  # never train on the official test PMIDs


def test_folds_file_found_beside_input_or_named(tmp_path, capsys):
    shutil.copy(PUBMEDQA, tmp_path / "ori_pqal.json")
    code, _, err = heal(capsys, "prep", "--dataset", "pubmedqa", "--input_path", tmp_path / "ori_pqal.json",
                        "--fold", "0", "--output_path", tmp_path / "o.csv")
    assert_one_line_error(code, err, "pqal_cv_folds.json", "--folds_path")
    shutil.copy(PUBMEDQA_FOLDS, tmp_path / "pqal_cv_folds.json")
    code, out, _ = heal(capsys, "prep", "--dataset", "pubmedqa", "--input_path", tmp_path / "ori_pqal.json",
                        "--fold", "0", "--output_path", tmp_path / "o.csv")
    assert code == 0 and len(io.read_records(tmp_path / "o.csv")) == 450


def test_bad_fold_number(capsys, tmp_path):
    code, _, err = heal(capsys, "prep", "--dataset", "pubmedqa", "--input_path", PUBMEDQA, "--fold", "12",
                        "--output_path", tmp_path / "o.csv")
    assert_one_line_error(code, err, "--fold 12")
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_cli_writes_each_format_with_metadata(capsys, tmp_path, suffix):
    out = tmp_path / f"pqa{suffix}"
    code, stdout, _ = heal(capsys, "prep", "--dataset", "pubmedqa", "--input_path", PUBMEDQA, "--fold", "0",
                           "--part", "dev", "--output_path", out)
    assert code == 0 and "kept 50" in stdout
    records = io.read_records(out)
    assert len(records) == 50 and {"id", "prompt", "completion", "reference", "label"} <= set(records[0])
    assert isinstance(records[0]["id"], str)
    meta = io.read_metadata(out)
    assert meta["source"] == "pubmedqa" and meta["credentialed"] is False
    assert meta["config"]["fold"] == 0 and meta["summary"]["kept"] == 50


def test_unlabelled_input_gives_prompt_only_records(tmp_path):
    data = json.loads(PUBMEDQA.read_text())
    unlabeled = {pmid: {k: v for k, v in item.items() if k not in ("final_decision", "reasoning_required_pred",
                                                                   "reasoning_free_pred")}
                 for pmid, item in list(data.items())[:20]}
    path = tmp_path / "ori_pqau.json"
    path.write_text(json.dumps(unlabeled))
    records, summary = prepare(path)
    assert len(records) == 20 and summary["labelled"] is False
    assert all("prompt" in r and "completion" not in r and "label" not in r for r in records)


def test_seed_command_verbatim(tmp_path):
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "processed").mkdir()
    shutil.copy(PUBMEDQA, tmp_path / "data/raw/ori_pqal.json")
    proc = subprocess.run([sys.executable, str(REPO / "src/data_preprocessing/preprocess_data.py"), "--dataset",
                           "pubmedqa", "--input_path", "data/raw/ori_pqal.json", "--output_path",
                           "data/processed/pubmedqa.csv"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(io.read_records(tmp_path / "data/processed/pubmedqa.csv")) == 500
