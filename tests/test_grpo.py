"""`heal grpo` on TRL's GRPOTrainer with HEAL's reward sources (rule, reward model, judge), scored before/after like
`heal ppo`; presets; bad input."""

import pytest
from helpers import REPO, assert_one_line_error, heal

from heal.data import io
from heal.models import run_folder

QUICK = ("--disable_tqdm", "true", "--report_to", "none", "--logging_steps", "1", "--save_steps", "1000",
         "--max_completion_length", "8", "--num_generations", "4", "--per_device_train_batch_size", "16",
         "--max_eval_samples", "12")


@pytest.fixture(autouse=True)
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_grpo_with_the_rule_reward_reads_the_records_labels(sft_tiny_run, tmp_path, capsys):
    """rule:pubmedqa needs each record's gold label: the dataset carries it to TRL, which hands it to the reward
    function; the rule's reward is logged per step and the held-out prompts are scored before and after."""
    no_prompts = tmp_path / "no.csv"
    io.write_records(no_prompts, [r for r in io.read_records(sft_tiny_run["data"]["train"]) if r["label"] == "no"])
    out = tmp_path / "grpo"
    code, stdout, err = heal(capsys, "grpo", "--model_name", sft_tiny_run["dir"], "--reward", "rule:pubmedqa",
                             "--dataset_path", no_prompts, "--output_dir", out, "--max_steps", "12",
                             "--learning_rate", "1e-3", "--temperature", "0.7", *QUICK)
    assert code == 0, err
    run = run_folder.read_run(out)
    m = run["metrics"]
    assert m["eval_before/accuracy"] <= 0.2 and "eval/accuracy" in m  # the SFT policy says "Yes." to every "no"
    rows = [r for r in run_folder.read_metrics(out) if "train/rewards/rule_pubmedqa/mean" in r]
    assert len(rows) == 12 and any(r["train/rewards/rule_pubmedqa/mean"] > 0 for r in rows)
    assert run["status"] == "complete" and "stage | `grpo`" in (out / "README.md").read_text()
    assert "held-out accuracy" in stdout


def test_grpo_with_a_reward_model_default_prompts(sft_tiny_run, reward_tiny_run, tmp_path, capsys):
    """No --dataset_path: the prompts are the reward model's (as in `heal ppo`); the reward model's normalised score
    is the reward."""
    out = tmp_path / "grpo_rm"
    code, _, err = heal(capsys, "grpo", "--model_name", sft_tiny_run["dir"], "--reward_model_path",
                        reward_tiny_run["dir"], "--output_dir", out, "--max_steps", "2", *QUICK)
    assert code == 0, err
    run = run_folder.read_run(out)
    assert run["data"]["prompts"] == str(reward_tiny_run["pairs"])
    rows = [r for r in run_folder.read_metrics(out) if "train/rewards/reward_model/mean" in r]
    assert rows and all(r["train/rewards/reward_model/mean"] != 0 for r in rows)
    assert "eval/score" in run["metrics"] and "eval_before/score" in run["metrics"]


def test_grpo_with_a_judges_score_as_the_reward(sft_tiny_run, tmp_path, capsys, monkeypatch):
    """d-RLAIF in GRPO: a local HF judge scores every completion; its scores (in [0, 1]) are the logged rewards."""
    monkeypatch.setenv("HEAL_CACHE_DIR", str(tmp_path / "cache"))
    spec = f"hf:{sft_tiny_run['dir']}"
    out = tmp_path / "grpo_judge"
    code, _, err = heal(capsys, "grpo", "--model_name", sft_tiny_run["dir"], "--reward", f"judge:{spec}",
                        "--dataset_path", sft_tiny_run["data"]["train"], "--output_dir", out, "--max_steps", "2",
                        *QUICK)
    assert code == 0, err
    key = "train/rewards/" + spec.replace(":", "_").replace("/", "_") + "/mean"
    rows = [r for r in run_folder.read_metrics(out) if key in r]
    assert len(rows) == 2 and all(0.0 <= r[key] <= 1.0 for r in rows)
    assert run_folder.read_run(out)["status"] == "complete"


def test_grpo_presets_parse():
    from heal.grpo.train import make_parser

    presets = sorted((REPO / "experiments/configs").glob("grpo_*.yaml"))
    assert presets
    for preset in presets:
        _, training, model_args = make_parser().parse(["--config", str(preset)])
        assert training.num_generations >= 2 and model_args.model_name_or_path


@pytest.mark.parametrize("argv, needles", [
    (["--model_name", "{sft}"], ["no reward"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa"], ["--dataset_path is required"]),
    (["--model_name", "{sft}", "--reward", "judge:telepathy", "--dataset_path", "{train}"], ["unknown judge"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{train}", "--value_model_path", "x"],
     ["GRPO has no value model"]),
])
def test_grpo_bad_input_is_one_line_and_exit_2(argv, needles, sft_tiny_run, tmp_path, capsys):
    values = {"sft": str(sft_tiny_run["dir"]), "train": str(sft_tiny_run["data"]["train"])}
    out = tmp_path / "out"
    code, _, err = heal(capsys, "grpo", *[a.format(**values) for a in argv], "--output_dir", out)
    assert_one_line_error(code, err, *needles)
