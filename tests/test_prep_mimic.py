"""MIMIC-IV-Note preparation, on synthetic discharge.csv fixtures written here (no MIMIC text, ever)."""

import csv
import gzip
import shutil
import subprocess
import sys

import pytest
from helpers import REPO, assert_one_line_error, files_in, heal

from heal.data import io
from heal.data.mimic import normalise_whitespace, split_sections
from heal.data.synthetic import MIMIC_COLUMNS, mimic_rows, write_mimic
from heal.errors import HealError

NOTE = """ \nName:  ___                     Unit No:   ___\n \nAdmission Date:  ___   Discharge Date:   ___\n \n
Service: MEDICINE\n \nChief Complaint:\ncough\n \nHistory of Present Illness:\nMr. ____ is a ___ yo man with\t\tcough
  for 3 days.\n \nPast Medical History:\n- asthma\n \nBrief Hospital Course:\nMr. ___ was treated for pneumonia.\n \n
ACTIVE ISSUES:\n# Pneumonia: ceftriaxone, improved.\n \nTRANSITIONAL ISSUES:\n- finish antibiotics\n \n
Medications on Admission:\n1. Albuterol\n \nDischarge Diagnosis:\npneumonia\n \nDischarge Instructions:\n
Dear Mr. ___,\nYou were admitted for pneumonia. Please finish your antibiotics.\n \nFollowup Instructions:\n___\n"""


def write_notes(path, rows):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=MIMIC_COLUMNS)
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow({"note_id": f"1-DS-{i}", "subject_id": "1", "hadm_id": str(100 + i), "note_type": "DS",
                             "note_seq": str(i), "charttime": "2180-01-01 00:00:00",
                             "storetime": "2180-01-01 10:00:00", **row})  # row may override note_id
    return path


def test_sections_found_and_bhc_not_cut_at_subheadings():
    sections = {s.name: s for s in split_sections(NOTE)}
    assert {"chief complaint", "brief hospital course", "discharge instructions", "followup instructions"} <= set(
        sections)
    bhc = sections["brief hospital course"]
    body = NOTE[bhc.body_start:bhc.end]
    assert "ACTIVE ISSUES" in body and "TRANSITIONAL ISSUES" in body and "Albuterol" not in body


def test_normalise_whitespace_keeps_placeholders_as_one_token():
    assert normalise_whitespace("Mr. ____ is  a\t___ yo \n\n\n\n man _____") == "Mr. ___ is a ___ yo\n\nman ___"


@pytest.mark.parametrize("target,tasks", [("bhc", ["mimic_bhc"]), ("di", ["mimic_di"]),
                                          ("both", ["mimic_bhc", "mimic_di"])])
def test_targets_and_inputs(tmp_path, capsys, target, tasks):
    src = write_notes(tmp_path / "discharge.csv", [{"text": NOTE}])
    out = tmp_path / "out.jsonl"
    code, _, err = heal(capsys, "prep", "--dataset", "mimic", "--input_path", src, "--target", target,
                        "--output_path", out)
    assert code == 0, err
    records = io.read_records(out)
    assert [r["task"] for r in records] == tasks
    for record in records:
        note = record["prompt"].split("\n\n", 1)[1].rsplit("\n\n", 1)[0]  # between instruction and cue
        # Both target sections are removed from the input whichever target is asked for (no leakage).
        assert "Brief Hospital Course" not in note and "Discharge Instructions" not in note
        assert "pneumonia" not in note.split("Discharge Diagnosis")[0]
        assert "Chief Complaint:\ncough" in note and "Followup Instructions" in note
        assert record["source"] == "mimic" and record["note_id"] == "1-DS-0"
        assert record["prompt"].startswith("Write the")
        assert "\t" not in note and "____" not in note and "  " not in note
    by_task = {r["task"]: r for r in records}
    if "mimic_bhc" in by_task:
        assert by_task["mimic_bhc"]["completion"].startswith("Mr. ___ was treated for pneumonia.")
        assert "TRANSITIONAL ISSUES:\n- finish antibiotics" in by_task["mimic_bhc"]["completion"]
    if "mimic_di" in by_task:
        assert by_task["mimic_di"]["completion"].startswith("Dear Mr. ___,")
        assert "Followup" not in by_task["mimic_di"]["completion"]


def test_drops_are_counted_by_reason(tmp_path, capsys):
    no_di = NOTE.split("Discharge Instructions:")[0]
    rows = [{"text": NOTE}, {"text": NOTE, "note_id": "1-DS-0"},  # the second is a duplicate of the first
            {"text": "   "}, {"text": "free text with no headers at all " * 5}, {"text": no_di}]
    src = write_notes(tmp_path / "discharge.csv", rows)
    out = tmp_path / "out.csv"
    code, stdout, _ = heal(capsys, "prep", "--dataset", "mimic", "--input_path", src, "--output_path", out)
    assert code == 0
    summary = io.read_metadata(out)["summary"]
    assert summary["read"] == 5
    assert summary["dropped"] == {"duplicate_note_id": 1, "empty_text": 1, "no_sections": 1,
                                  "missing_target:di": 1}
    assert summary["kept_by_task"] == {"mimic_bhc": 2, "mimic_di": 1} and summary["kept"] == 3
    assert "duplicate_note_id 1" in stdout and "read 5, kept 3" in stdout


def test_length_filters(tmp_path):
    from heal.data.mimic import Filters, prepare

    src = write_notes(tmp_path / "d.csv", [{"text": NOTE}])
    with io.RecordWriter(tmp_path / "o.jsonl") as writer:
        summary = prepare(src, writer, "both", Filters(min_target_chars=60), progress=False)
    assert summary["kept"] == 2
    with io.RecordWriter(tmp_path / "o.jsonl") as writer:
        summary = prepare(src, writer, "both", Filters(max_target_chars=90), progress=False)
    assert summary["dropped"] == {"target_too_long:bhc": 1} and summary["kept"] == 1
    with pytest.raises(HealError, match="input_too_long 2"), io.RecordWriter(tmp_path / "o.jsonl") as writer:
        prepare(src, writer, "both", Filters(max_input_chars=50, min_input_chars=0), progress=False)


def test_streaming_in_small_chunks_and_processes_gives_identical_output(tmp_path, capsys):
    src = tmp_path / "discharge.csv.gz"
    write_mimic(src, n=60, seed=1)
    outputs = []
    for chunk, procs in (("1000", "1"), ("7", "1"), ("7", "2")):
        out = tmp_path / f"out_{chunk}_{procs}.jsonl"
        code, _, err = heal(capsys, "prep", "--dataset", "mimic", "--input_path", src, "--chunk_size", chunk,
                            "--num_proc", procs, "--output_path", out)
        assert code == 0, err
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    assert len(io.read_records(tmp_path / "out_7_1.jsonl")) == 120


def test_synthetic_notes_look_like_mimic_and_prepare_cleanly(tmp_path, capsys):
    rows = list(mimic_rows(5, seed=0))
    assert list(rows[0]) == list(MIMIC_COLUMNS)
    assert "___" in rows[0]["text"] and "Brief Hospital Course:\n" in rows[0]["text"]
    assert rows == list(mimic_rows(5, seed=0)) and rows != list(mimic_rows(5, seed=1))
    src = tmp_path / "d.csv"
    write_mimic(src, 40, seed=2)
    out = tmp_path / "o.parquet"
    code, _, _ = heal(capsys, "prep", "--dataset", "mimic", "--input_path", src, "--output_path", out)
    meta = io.read_metadata(out)
    assert code == 0 and meta["summary"]["kept"] == 80 and meta["summary"]["dropped"] == {}
    assert meta["credentialed"] is True and meta["source"] == "mimic"
    import pyarrow.parquet as pq

    assert b"mimic" in pq.read_schema(out).metadata[b"heal"]


@pytest.mark.parametrize("case", ["no_text_column", "invalid_utf8", "header_only", "all_dropped", "missing_file",
                                  "truncated_gz"])
def test_bad_input_exit_2_and_no_output(tmp_path, capsys, case):
    src = tmp_path / "in" / "discharge.csv"
    src.parent.mkdir()
    needle = "discharge.csv"
    if case == "no_text_column":
        src.write_text("note_id,subject_id,body\n1,2,hello\n")
        needle = "'text'"
    elif case == "invalid_utf8":
        write_notes(src, [{"text": NOTE}] * 3)
        src.write_bytes(src.read_bytes().replace(b"cough", b"co\xff\xfegh"))
        needle = "UTF-8"
    elif case == "header_only":
        src.write_text(",".join(MIMIC_COLUMNS) + "\n")
        needle = "no notes"
    elif case == "all_dropped":
        write_notes(src, [{"text": ""}, {"text": "nothing recognisable here"}])
        needle = "no record kept"
    elif case == "missing_file":
        src = tmp_path / "in" / "nope.csv"
        needle = "not found"
    elif case == "truncated_gz":
        src = write_notes(tmp_path / "in" / "discharge.csv.gz", [{"text": NOTE}] * 200)
        src.write_bytes(src.read_bytes()[:300])
        needle = "discharge.csv.gz"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = heal(capsys, "prep", "--dataset", "mimic", "--input_path", src, "--output_path",
                        out_dir / "o.csv", "--progress", "false")
    assert_one_line_error(code, err, needle)
    assert files_in(out_dir) == []


def test_seed_command_verbatim(tmp_path):
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "processed").mkdir()
    write_mimic(tmp_path / "data/raw/mimic_iv_notes.csv", 10, seed=0)
    proc = subprocess.run([sys.executable, str(REPO / "src/data_preprocessing/preprocess_data.py"), "--dataset",
                           "mimic", "--input_path", "data/raw/mimic_iv_notes.csv", "--output_path",
                           "data/processed/mimic_iv_summaries.csv"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    records = io.read_records(tmp_path / "data/processed/mimic_iv_summaries.csv")
    assert len(records) == 20 and {r["source"] for r in records} == {"mimic"}
