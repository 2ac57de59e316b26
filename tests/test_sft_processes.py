"""`heal sft` as separate processes: the seed's command verbatim, two ranks under torchrun, SIGKILL then resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import QUICK_FLAGS, TINY_FLAGS
from helpers import REPO

from heal.cli import run
from heal.models import run_folder

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _prep(cwd: Path, *argv: str) -> None:
    os.makedirs(cwd / "data" / "raw", exist_ok=True)
    os.makedirs(cwd / "data" / "processed", exist_ok=True)
    assert run(["prep", *[str(cwd / a) if a.startswith("data/") else a for a in argv]]) == 0


@pytest.mark.parametrize("task", ["pubmedqa", "mimic"])
def test_seed_sft_command_works_verbatim(tmp_path, task):
    """The seed README's command, flag for flag, with heal-tiny as <model> (small data keeps it quick)."""
    if task == "pubmedqa":
        _prep(tmp_path, "--dataset", "synthetic_pubmedqa", "--n", "24", "--output_path", "data/raw/pubmedqa.json")
        _prep(tmp_path, "--dataset", "pubmedqa", "--input_path", "data/raw/pubmedqa.json",
              "--output_path", "data/processed/pubmedqa.csv")
        data, out = "data/processed/pubmedqa.csv", "models/policy_model/pubmedqa_sft"
    else:
        _prep(tmp_path, "--dataset", "synthetic_mimic", "--n", "4", "--output_path", "data/raw/mimic_iv_notes.csv")
        _prep(tmp_path, "--dataset", "mimic", "--input_path", "data/raw/mimic_iv_notes.csv", "--progress", "false",
              "--output_path", "data/processed/mimic_iv_summaries.csv")
        data, out = "data/processed/mimic_iv_summaries.csv", "models/policy_model/mimic_sft"
    command = [sys.executable, str(REPO / "src" / "training" / "sft.py"), "--dataset", task,
               "--dataset_path", data, "--model_name", "heal-tiny", "--output_dir", out]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / out
    run_file = run_folder.read_run(folder)
    assert run_file["status"] == "complete"
    assert run_file["metrics"]["eval/loss"] < run_file["metrics"]["eval_before/loss"]
    assert (folder / "model.safetensors").exists() and (folder / "README.md").exists()
    if task == "mimic":  # credentialed data is flagged on the card
        assert "credentialed data (MIMIC)" in (folder / "README.md").read_text()


def test_two_processes_under_torchrun_both_train_in_sync(tmp_path, pubmedqa_sft_data):
    """torchrun --nproc_per_node 2 on CPU: world size 2 (gloo), each rank trains on its own half of every batch, and
    DDP keeps their weights identical."""
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "heal.cli", "sft", "--dataset_path", str(pubmedqa_sft_data["train"]),
               "--eval_dataset_path", str(pubmedqa_sft_data["dev"]), "--model_name", "heal-tiny",
               "--output_dir", str(out), *TINY_FLAGS, *QUICK_FLAGS, "--max_steps", "12",
               "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--save_strategy", "no"]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = run_folder.read_run(out)
    ranks = result["distributed"]["ranks"]
    assert result["distributed"]["world_size"] == 2
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    for rank in ranks:
        assert rank["micro_batches"] == 12 and rank["sequences"] == 12 * 4 and rank["loss_tokens"] > 0
    assert ranks[0]["trainable_checksum"] == pytest.approx(ranks[1]["trainable_checksum"], rel=0, abs=1e-9)
    assert result["metrics"]["eval/loss"] < result["metrics"]["eval_before/loss"]
    assert "8 sequences (4 per device × 1 accumulation × 2 processes)" in (out / "README.md").read_text()


def _wait_for_checkpoint(folder: Path, process: subprocess.Popen, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = run_folder.checkpoints(folder)
        if done:
            return done[-1][0]
        if process.poll() is not None:
            raise AssertionError(f"the run ended (code {process.returncode}) before its first checkpoint: "
                                 + process.stderr.read()[-2000:])
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_after_a_checkpoint_then_resume_finishes(tmp_path, pubmedqa_sft_data):
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "heal.cli", "sft", "--dataset_path", str(pubmedqa_sft_data["train"]),
            "--model_name", "heal-tiny", "--output_dir", str(out), *TINY_FLAGS, *QUICK_FLAGS,
            "--eval_split_size", "0", "--max_steps", "30", "--save_steps", "10", "--save_total_limit", "3"]
    process = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        step = _wait_for_checkpoint(out, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    killed_at = run_folder.checkpoints(out)[-1][0]
    assert step <= killed_at < 30
    # the killed run left checkpoints, not something that looks like a finished model
    assert run_folder.read_run(out)["status"] == "running"
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()

    again = subprocess.run([*argv, "--resume_from_checkpoint", "last"], env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    result = run_folder.read_run(out)
    assert result["status"] == "complete" and result["attempts"] == 2
    assert result["resumed_from_step"] == killed_at
    assert result["metrics"]["train/global_step"] == 30
    assert result["distributed"]["ranks"][0]["micro_batches"] == 30 - killed_at  # only the missing steps ran
    steps = [r["step"] for r in run_folder.read_metrics(out) if "train/loss" in r]
    assert steps == list(range(5, 31, 5))  # logged once each: what came after the checkpoint was dropped, then redone
    state = json.loads((out / "checkpoint-30" / "trainer_state.json").read_text())
    assert state["global_step"] == 30
