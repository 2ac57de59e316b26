"""`heal grpo` on TRL's GRPOTrainer with HEAL's reward sources (rule, reward model, judge), scored before/after like
`heal ppo`; presets; bad input."""

import pytest
from helpers import REPO, assert_one_line_error, heal

from heal.data import io
from heal.models import run_folder

QUICK = ("--disable_tqdm", "true", "--report_to", "none", "--logging_steps", "1", "--save_steps", "1000",
         "--max_completion_length", "8", "--num_generations", "4", "--per_device_train_batch_size", "16",
         "--max_eval_samples", "12")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    print(m)
    assert m["eval_before/accuracy"] <= 0.2  # the SFT policy says "Yes." to every "no"
    # GRPO learned what the rule rewards: the held-out greedy reward (= accuracy here) rose against its value before
    assert m["eval/score"] >= m["eval_before/score"] + 0.3 and m["eval/accuracy"] == m["eval/score"]
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
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{long_prompts}"],
     ["1 prompt(s) longer than", "--max_completion_length 64", "--max_prompt_length"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{train}", "--max_prompt_length",
      "100000"], ["exceed the model's"]),
])
def test_grpo_bad_input_is_one_line_and_exit_2(argv, needles, sft_tiny_run, tmp_path, capsys):
    """Bad input, and PPO's prompt-length check: a prompt longer than the context leaves beside the completion is an
    error before anything is loaded, unless --max_prompt_length says to cut it."""
    long_prompts = tmp_path / "long.jsonl"
    records = io.read_records(sft_tiny_run["data"]["train"])[:8]
    io.write_records(long_prompts, records + [{**records[0], "prompt": "Question: why? " * 3000}])
    values = {"sft": str(sft_tiny_run["dir"]), "train": str(sft_tiny_run["data"]["train"]),
              "long_prompts": str(long_prompts)}
    out = tmp_path / "out"
    code, _, err = heal(capsys, "grpo", *[a.format(**values) for a in argv], "--output_dir", out)
    assert_one_line_error(code, err, *needles)


def test_grpo_max_prompt_length_keeps_each_prompts_last_tokens(sft_tiny_run):
    from transformers import AutoTokenizer

    from heal.grpo.train import _dataset
    from heal.models.prompting import format_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(sft_tiny_run["dir"]))
    records = io.read_records(sft_tiny_run["data"]["train"])[:2]
    records[1] = {**records[1], "prompt": "Question: why? " * 300 + records[1]["prompt"]}
    limit = len(tokenizer(format_prompt(tokenizer, records[0]["prompt"]), add_special_tokens=False)["input_ids"])
    rows = _dataset(tokenizer, records, None, limit).to_list()
    assert rows[0]["prompt"] == format_prompt(tokenizer, records[0]["prompt"])  # short enough: untouched
    cut = tokenizer(rows[1]["prompt"], add_special_tokens=False)["input_ids"]
    assert len(cut) <= limit + 2 and format_prompt(tokenizer, records[1]["prompt"]).endswith(rows[1]["prompt"].lstrip())
    assert rows[1]["raw_prompt"] == records[1]["prompt"]
