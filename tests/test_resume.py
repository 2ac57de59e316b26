"""Every training verb resumes the same way (heal.runs): a run checkpointed at steps 1 and 2, resumed from
checkpoint-1 to step 3, logs each step exactly once — what was logged after the checkpoint is cut from metrics.jsonl
before it is logged again — and finishes complete, saying which step it resumed from."""

import pytest
from conftest import QUICK_FLAGS, TINY_FLAGS
from helpers import heal

from heal.models import run_folder

CHECKPOINTS = ("--save_strategy", "steps", "--save_steps", "1", "--logging_steps", "1")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _argv(verb: str, sft_tiny_run) -> tuple[list, str]:
    """(flags of a 2-step run of `verb`, the metric every logged step carries)."""
    data = sft_tiny_run["data"]
    policy = ["--model_name", sft_tiny_run["dir"]]
    pairs = ["--dataset", "pubmedqa", "--dataset_path", data["train"], "--eval_split_size", "0",
             "--per_device_train_batch_size", "4"]
    return {
        "sft": (["--dataset_path", data["train"], "--model_name", "heal-tiny", *TINY_FLAGS, "--eval_split_size", "0",
                 "--max_train_samples", "32", "--per_device_train_batch_size", "4"], "train/loss"),
        "reward": ([*pairs, "--model_name", "heal-tiny", *TINY_FLAGS, "--normalize_rewards", "false"], "train/loss"),
        "dpo": ([*pairs, *policy], "train/loss"),
        "grpo": ([*policy, "--reward", "rule:pubmedqa", "--dataset_path", data["train"], "--eval_split_size", "0",
                  "--max_completion_length", "4", "--num_generations", "2", "--per_device_train_batch_size", "4"],
                 "train/loss"),
        "ppo": ([*policy, "--reward", "rule:pubmedqa", "--dataset_path", data["train"], "--eval_split_size", "0",
                 "--response_length", "4", "--per_device_train_batch_size", "4", "--num_ppo_epochs", "1"],
                "objective/scores"),
    }[verb]


@pytest.mark.parametrize("verb", ["sft", "reward", "dpo", "grpo", "ppo"])
def test_resuming_from_an_earlier_checkpoint_logs_every_step_once(verb, sft_tiny_run, tmp_path, capsys):
    argv, key = _argv(verb, sft_tiny_run)
    out = tmp_path / verb
    code, _, err = heal(capsys, verb, *argv, "--output_dir", out, "--max_steps", "2", *QUICK_FLAGS, *CHECKPOINTS)
    assert code == 0, err
    assert [r["step"] for r in run_folder.read_metrics(out) if key in r] == [1, 2]
    assert [step for step, _ in run_folder.checkpoints(out)] == [1, 2]

    code, _, err = heal(capsys, verb, *argv, "--output_dir", out, "--max_steps", "3", *QUICK_FLAGS, *CHECKPOINTS,
                        "--resume_from_checkpoint", out / "checkpoint-1")
    assert code == 0, err
    assert [r["step"] for r in run_folder.read_metrics(out) if key in r] == [1, 2, 3]  # step 2 once, not twice
    run = run_folder.read_run(out)
    assert run["status"] == "complete" and run["resumed_from_step"] == 1 and run["attempts"] == 2
    assert (out / "config.json").exists() and not (out / run_folder.STAGING).exists()
