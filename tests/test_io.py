import json

import pytest

from heal.data import io
from heal.errors import HealError

RECORDS = [{"id": "0012", "prompt": "a,\n\"quoted\"", "completion": "yes", "category": 3},
           {"id": "0013", "prompt": "é ___ b", "completion": None, "category": 4}]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_round_trip_each_format(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    io.write_records(path, RECORDS, {"source": "pubmedqa"})
    back = io.read_records(path)
    assert [r["id"] for r in back] == ["0012", "0013"]  # leading zeros survive
    assert back[0]["prompt"] == RECORDS[0]["prompt"]
    assert back[1]["prompt"] == "é ___ b"
    assert io.read_metadata(path)["records"] == 2
    assert io.read_metadata(path)["source"] == "pubmedqa"


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        with io.RecordWriter(path) as writer:
            writer.write(RECORDS)
            raise RuntimeError("crash mid-run")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_failed_rewrite(tmp_path):
    path = tmp_path / "out.csv"
    io.write_records(path, RECORDS)
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with io.RecordWriter(path) as writer:
            writer.write(RECORDS[:1])
            raise RuntimeError("crash")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.csv.meta.json"]


def test_output_in_missing_folder(tmp_path):
    with pytest.raises(HealError, match="does not exist"):
        io.check_output_path(tmp_path / "missing" / "out.csv")


def test_unsupported_output_extension(tmp_path):
    with pytest.raises(HealError, match=r"\.csv, \.jsonl, \.parquet"):
        io.check_output_path(tmp_path / "out.xlsx")


def test_written_files_get_normal_permissions(tmp_path):
    path = io.write_records(tmp_path / "o.jsonl", RECORDS)
    assert path.stat().st_mode & 0o044  # readable by group/others (mkstemp alone would give 0600)


def test_read_bad_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"a": 1}) + "\n{not json\n")
    with pytest.raises(HealError, match="line 2"):
        io.read_records(path)


def test_require_columns_lists_what_it_found(tmp_path):
    with pytest.raises(HealError, match=r"missing column\(s\) completion \(found: id, prompt\)"):
        io.require_columns([{"id": 1, "prompt": "p"}], ["prompt", "completion"], tmp_path / "x.csv")


def test_credentialed_from_records_or_sidecar(tmp_path):
    from heal.data.schema import is_credentialed

    assert is_credentialed([{"source": "mimic"}])
    assert not is_credentialed([{"source": "pubmedqa"}])
    path = io.write_records(tmp_path / "m.jsonl", [{"prompt": "x"}], {"source": "mimic", "credentialed": True})
    assert is_credentialed(path=path)
