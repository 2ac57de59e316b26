"""`heal ppo` as separate processes: two ranks under torchrun (rollouts split, gradients synchronised), and a run
killed with SIGKILL that resumes from its last checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heal.models import run_folder

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_NUM_THREADS": "1"}
SMALL = ("--response_length", "6", "--max_prompt_length", "96", "--disable_tqdm", "true")


@pytest.mark.parametrize("batching", [
    ("--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "4", "--num_mini_batches", "2"),
    ("--per_device_train_batch_size", "4"),  # one optimizer step per epoch: the first step's pass gives π_old, V
], ids=["2-minibatches-x-2-micro-batches", "whole-batch-steps"])
def test_two_processes_split_the_rollouts_and_stay_in_sync(batching, sft_tiny_run, reward_tiny_run, tmp_path):
    """torchrun --nproc_per_node 2 on CPU (gloo): each rank rolls out its own 4 prompts per update, the metrics count
    both ranks' 8 rollouts, and after the DDP updates (2 minibatches of 2 micro-batches each per PPO epoch, or one
    whole-batch step) both ranks hold the same, changed weights."""
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "heal.cli", "ppo", "--model_name", str(sft_tiny_run["dir"]), "--reward_model_path",
               str(reward_tiny_run["dir"]), "--dataset_path", str(sft_tiny_run["data"]["train"]),
               "--eval_dataset_path", str(sft_tiny_run["data"]["dev"]), "--max_eval_samples", "8",
               "--output_dir", str(out), "--max_steps", "2", *batching, "--save_strategy", "no", *SMALL]
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = run_folder.read_run(out)
    ranks = run["distributed"]["ranks"]
    assert run["distributed"]["world_size"] == 2 and sorted(r["rank"] for r in ranks) == [0, 1]
    assert run["batch"] == {"rollouts_per_update": 8, "rollouts_per_process": 4, "updates": 2}
    assert all(r["rollouts"] == 2 * 4 and r["updates"] == 2 for r in ranks)
    assert ranks[0]["trainable_checksum"] == pytest.approx(ranks[1]["trainable_checksum"], rel=0, abs=1e-9)
    rows = [r for r in run_folder.read_metrics(out) if "objective/scores" in r]
    for row in rows:  # the EOS count is summed over both ranks' rollouts, the rate averaged over them
        assert row["val/num_eos_tokens"] == pytest.approx(row["response/eos_rate"] * 8)
        assert row["train/episode"] == row["step"] * 8
    assert run["metrics"]["eval/samples"] == 8  # each rank answered half of the held-out prompts

    import torch
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(sft_tiny_run["dir"]).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the synchronised updates changed the policy


def _wait_for_checkpoint(folder: Path, process: subprocess.Popen, timeout: float = 300) -> int:
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


def _wait_for_update(folder: Path, process: subprocess.Popen, step: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if any(r.get("step") == step for r in run_folder.read_metrics(folder)):
            return
        time.sleep(0.02)
    raise AssertionError(f"update {step} was never logged")


def test_sigkill_then_resume_continues_from_the_last_checkpoint(sft_tiny_run, tmp_path):
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "heal.cli", "ppo", "--model_name", str(sft_tiny_run["dir"]), "--reward",
            "rule:pubmedqa", "--dataset_path", str(sft_tiny_run["data"]["train"]), "--eval_split_size", "0",
            "--output_dir", str(out), "--max_steps", "6", "--per_device_train_batch_size", "8", "--save_steps", "2",
            "--save_total_limit", "3", *SMALL]
    process = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        step = _wait_for_checkpoint(out, process)
        _wait_for_update(out, process, step + 1)  # killed mid-way: an update after the checkpoint was logged
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    killed_at = run_folder.checkpoints(out)[-1][0]
    assert step <= killed_at < 6
    assert run_folder.read_run(out)["status"] == "running"  # checkpoints, but nothing that looks like a final model
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    logged_before = {r["step"]: r for r in run_folder.read_metrics(out) if "objective/scores" in r}
    assert max(logged_before) > killed_at  # work after the checkpoint was lost and must be redone

    again = subprocess.run([*argv, "--resume_from_checkpoint", "last"], env=ENV, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    run = run_folder.read_run(out)
    assert run["status"] == "complete" and run["attempts"] == 2
    assert run["resumed_from_step"] == killed_at
    assert run["metrics"]["train/updates"] == 6
    assert run["distributed"]["ranks"][0]["updates"] == 6 - killed_at  # only the missing updates ran
    rows = [r for r in run_folder.read_metrics(out) if "objective/scores" in r]
    assert [r["step"] for r in rows] == list(range(1, 7))  # each update logged once
    for row in rows:  # the redone updates repeat exactly what the killed run did (same prompts, same RNG)
        if row["step"] in logged_before:
            assert row["objective/scores"] == logged_before[row["step"]]["objective/scores"]
            assert row["loss/policy"] == pytest.approx(logged_before[row["step"]]["loss/policy"], abs=1e-6)
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
