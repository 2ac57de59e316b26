"""`heal annotate` on the command line: light --help, add-annotator, stats, export (also as a pipeline stage, read by
`heal reward` and `heal dpo`), the MIMIC guard on a network bind, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from annotate_fixtures import write_pairs
from conftest import QUICK_FLAGS, TINY_FLAGS
from helpers import assert_one_line_error, heal

from heal.annotate.config import ServeConfig
from heal.annotate.pairs import load_pairs
from heal.annotate.serve import prepare
from heal.annotate.store import Annotator, Store
from heal.data import io
from heal.errors import HealError


@pytest.mark.parametrize("argv,needle", [(["annotate", "--help"], "add-annotator"),
                                         (["annotate", "serve", "--help"], "--labels_per_pair"),
                                         (["annotate", "export", "--help"], "--min_labels")])
def test_help_imports_nothing_heavy(argv, needle):
    probe = (f"import sys; from heal.cli import run\ntry: run({argv!r})\nexcept SystemExit: pass\n"
             "print('HEAVY', [m for m in ('torch', 'transformers', 'trl', 'pandas', 'datasets') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out and needle in out


def labelled_db(tmp_path, n: int = 6, votes=("A", "A"), source: str | None = None):
    """A database where alice and bob labelled all n pairs; votes[i] is what annotator i pressed on every pair."""
    from fastapi.testclient import TestClient

    from heal.annotate.app import create_app

    store = Store(tmp_path / "labels.sqlite")
    store.import_pairs(load_pairs(write_pairs(tmp_path / "pairs.jsonl", n=n, judged=True, source=source))[0])
    app = create_app(store, labels_per_pair=2)
    for name, vote in zip(("alice", "bob"), votes):
        client = TestClient(app, headers={"Authorization": f"Bearer {store.add_annotator(name)}"})
        while (pair := client.get("/api/next").json()["pair"]) is not None:
            chosen = store.read("SELECT answer_1 FROM pairs WHERE id = ?", (pair["pair_id"],))[0][0]
            # vote for the file's chosen answer ("A" here means: the better one), whatever side it is shown on
            letter = vote if vote not in ("A", "B") else ("A" if (pair["answer_a"] == chosen) == (vote == "A")
                                                          else "B")
            client.post("/api/labels", json={"pair_id": pair["pair_id"], "choice": letter, "flags": []})
    return tmp_path / "labels.sqlite"


def test_add_annotator_prints_a_working_token_once(tmp_path, capsys):
    db = tmp_path / "labels.sqlite"
    code, out, err = heal(capsys, "annotate", "add-annotator", "dr.jones", "--db_path", db, "--admin")
    assert code == 0, err
    token = out.split("token (shown once; only its hash is stored): ")[1].strip()
    who = Store(db).annotator_for(token)
    assert who.name == "dr.jones" and who.is_admin
    code, _, err = heal(capsys, "annotate", "add-annotator", "dr.jones", "--db_path", db)
    assert_one_line_error(code, err, "already exists")
    code, _, err = heal(capsys, "annotate", "add-annotator", "bad name!", "--db_path", db)
    assert_one_line_error(code, err, "annotator name")
    code, out, err = heal(capsys, "annotate", "reset-token", "dr.jones", "--db_path", db)
    assert code == 0, err
    new_token = out.rsplit(": ", 1)[1].strip()
    assert Store(db).annotator_for(token) is None and Store(db).annotator_for(new_token).name == "dr.jones"
    code, _, err = heal(capsys, "annotate", "reset-token", "dr.who", "--db_path", db)
    assert_one_line_error(code, err, "unknown annotator 'dr.who'", "dr.jones")


def test_stats_and_export_resolve_votes(tmp_path, capsys):
    db = labelled_db(tmp_path, votes=("A", "tie"))
    code, out, err = heal(capsys, "annotate", "stats", "--db_path", db, "--output_path", tmp_path / "stats.json")
    assert code == 0, err
    assert "labels: 12/12" in out and "Fleiss' kappa" in out and "AI judge vs clinicians: 1.000" in out
    stats = json.loads((tmp_path / "stats.json").read_text())
    # alice always answer_1, bob always tie: Fleiss over 6 pairs × 2 ratings: P̄ = 0, p = (1/2, 0, 1/2, 0) → −1
    assert stats["agreement"]["fleiss"]["kappa"] == pytest.approx(-1.0)
    config = tmp_path / "export.yaml"
    config.write_text(yaml.safe_dump({"db_path": str(db), "output_path": str(tmp_path / "prefs.jsonl")}))
    code, out, err = heal(capsys, "annotate", "export", "--config", config)
    assert code == 0, err
    records = io.read_records(tmp_path / "prefs.jsonl")
    assert len(records) == 6
    assert {r["votes_chosen"] for r in records} == {1} and {r["votes_tie"] for r in records} == {1}
    assert all(r["chosen"] != r["rejected"] and r["ai_agrees"] is True for r in records)
    assert io.read_metadata(tmp_path / "prefs.jsonl")["summary"]["outcomes"] == {"exported": 6}
    code, _, err = heal(capsys, "annotate", "export", "--config", config, "--min_labels", "3")
    assert_one_line_error(code, err, "no pair can be exported", "too_few_labels 6")


def flags(*argv: str) -> dict:
    """("--a", "1", "--b", "x") → {"a": "1", "b": "x"}: command-line flags as a pipeline stage's args."""
    return {k.lstrip("-"): v for k, v in zip(argv[::2], argv[1::2])}


def test_export_feeds_heal_reward_as_a_pipeline_stage(tmp_path, capsys):
    db = labelled_db(tmp_path, n=6)
    pipeline = {"run_dir": str(tmp_path / "run"), "stages": {
        "clinician_prefs": {"verb": "annotate", "args": {"db_path": str(db),
                                                         "output_path": "${run_dir}/data/prefs.jsonl"}},
        "reward": {"args": {"dataset_path": "${clinician_prefs}", "model_name": "heal-tiny", "max_steps": 2,
                            "eval_split_size": 0, **flags(*TINY_FLAGS, *QUICK_FLAGS)}}}}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    code, out, err = heal(capsys, "pipeline", path)
    assert code == 0, err
    assert len(io.read_records(tmp_path / "run" / "data" / "prefs.jsonl")) == 6
    run = json.loads((tmp_path / "run" / "reward" / "heal_run.json").read_text())
    assert run["data"]["train_pairs"] == 6 and run["pairs"].endswith("prefs.jsonl")
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "reward").config.num_labels == 1
    # a label stored since (still in the database's write-ahead log) makes the export stage run again
    store = Store(db)
    row = store.read("SELECT id, name FROM annotators WHERE name = 'alice'")[0]
    store.undo(Annotator(row["id"], row["name"], False))
    code, out, err = heal(capsys, "pipeline", path, "--stages", "clinician_prefs")
    assert code == 0 and "unchanged" not in out, out


def test_export_is_read_by_heal_dpo(tmp_path, capsys, sft_tiny_run):
    db = labelled_db(tmp_path, n=6)
    prefs = tmp_path / "prefs.jsonl"
    assert heal(capsys, "annotate", "export", "--db_path", db, "--output_path", prefs)[0] == 0
    out = tmp_path / "dpo"
    code, _, err = heal(capsys, "dpo", "--dataset_path", prefs, "--eval_split_size", "0", "--model_name",
                        sft_tiny_run["dir"], "--output_dir", out, "--max_steps", "2", *QUICK_FLAGS,
                        "--per_device_train_batch_size", "2")
    assert code == 0, err
    assert json.loads((out / "heal_run.json").read_text())["data"] == {"train_pairs": 6, "eval_pairs": 0}


def test_mimic_pairs_refused_on_a_network_bind_unless_overridden(tmp_path):
    pairs = write_pairs(tmp_path / "mimic.jsonl", n=2, source="mimic")
    db = tmp_path / "labels.sqlite"
    with pytest.raises(HealError, match="--allow_credentialed_on_network"):
        prepare(ServeConfig(db_path=str(db), pairs_path=str(pairs), host="0.0.0.0"))
    assert not db.exists()  # refused before anything was written
    store, added = prepare(ServeConfig(db_path=str(db), pairs_path=str(pairs)))  # loopback: fine
    assert added == 2
    with pytest.raises(HealError, match="credentialed"):  # already in the database: still refused
        prepare(ServeConfig(db_path=str(db), host="192.168.1.5"))
    assert prepare(ServeConfig(db_path=str(db), host="0.0.0.0", allow_credentialed_on_network=True))[1] == 0
    plain = write_pairs(tmp_path / "plain.jsonl", n=2)
    assert prepare(ServeConfig(db_path=str(tmp_path / "b.sqlite"), pairs_path=str(plain), host="0.0.0.0"))[1] == 2


def test_serve_defaults_to_loopback_and_imports_once(tmp_path):
    assert ServeConfig(db_path="x").host == "127.0.0.1"
    pairs = write_pairs(tmp_path / "p.jsonl", n=4)
    config = ServeConfig(db_path=str(tmp_path / "l.sqlite"), pairs_path=str(pairs))
    assert prepare(config)[1] == 4 and prepare(config)[1] == 0


@pytest.mark.parametrize("argv,needles", [
    (["serve", "--pairs_path", "{tmp}/missing.jsonl", "--db_path", "{tmp}/l.sqlite"], ["missing.jsonl", "not found"]),
    (["serve", "--pairs_path", "{tmp}/bad.jsonl", "--db_path", "{tmp}/l.sqlite"], ["bad.jsonl", "line 1"]),
    (["serve", "--pairs_path", "{tmp}/good.jsonl", "--db_path", "{tmp}/no/such/dir/l.sqlite"], ["not a usable"]),
    (["serve", "--pairs_path", "{tmp}/good.jsonl", "--db_path", "{tmp}/bad.jsonl"], ["not a HEAL annotation"]),
    (["serve", "--db_path", "{tmp}/empty.sqlite"], ["no pairs to label"]),
    (["serve", "--pairs_path", "{tmp}/good.jsonl", "--db_path", "{tmp}/l.sqlite", "--labels_per_pair", "0"],
     ["--labels_per_pair"]),
    (["serve", "--pairs_path", "{tmp}/good.jsonl"], ["--db_path is required"]),
    (["stats", "--db_path", "{tmp}/nope.sqlite"], ["no such database"]),
    (["stats", "--db_path", "{tmp}/other.sqlite"], ["not a HEAL annotation database"]),
    (["stats", "--db_path", "{tmp}/bad.jsonl"], ["not a HEAL annotation database"]),
    (["export", "--db_path", "{tmp}/nope.sqlite", "--output_path", "{tmp}/o.jsonl"], ["no such database"]),
    (["export", "--db_path", "{tmp}/nope.sqlite", "--output_path", "{tmp}/o.txt"], ["unsupported output"]),
    (["label", "--db_path", "x"], ["unknown command 'label'"]),
    (["serve", "--db_path", "x", "--bogus", "1"], ["--bogus"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, needles):
    write_pairs(tmp_path / "good.jsonl", n=2)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    import sqlite3

    sqlite3.connect(tmp_path / "other.sqlite").execute("CREATE TABLE notes (text TEXT)").connection.commit()
    code, _, err = heal(capsys, "annotate", *[a.format(tmp=tmp_path) for a in argv])
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "o.jsonl").exists()
