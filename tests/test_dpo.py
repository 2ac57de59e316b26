"""`heal dpo` on TRL's DPOTrainer: the same pair sources as `heal reward`, learning on heal-tiny, LoRA, artifacts,
presets, bad input."""

import pytest
from helpers import REPO, assert_one_line_error, heal

from heal.data import io
from heal.models import run_folder

QUICK = ("--disable_tqdm", "true", "--report_to", "none", "--logging_steps", "2", "--save_steps", "1000",
         "--per_device_train_batch_size", "8", "--max_length", "512")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_dpo_learns_the_reference_preferences(sft_tiny_run, tmp_path, capsys):
    """Reference-derived PubMedQA pairs (gold answer vs the same answer under a wrong decision), derived from the
    processed file exactly as `heal reward` derives them: the held-out DPO loss falls below ln 2."""
    out = tmp_path / "dpo"
    code, stdout, err = heal(capsys, "dpo", "--dataset", "pubmedqa", "--dataset_path", sft_tiny_run["data"]["train"],
                             "--eval_dataset_path", sft_tiny_run["data"]["dev"], "--model_name", sft_tiny_run["dir"],
                             "--output_dir", out, "--max_steps", "12", *QUICK)
    assert code == 0, err
    run = run_folder.read_run(out)
    m = run["metrics"]
    assert m["eval_before/loss"] == pytest.approx(0.6931, abs=1e-3)  # the policy is its own reference at step 0
    assert m["eval/loss"] < m["eval_before/loss"] - 0.002
    assert m["eval/rewards/accuracies"] > 0.5
    # measured here, not read from TRL's logs: on held-out pairs the trained policy prefers the chosen answer over the
    # rejected one by a wider log-probability margin than the SFT policy did
    before = _margin(sft_tiny_run["dir"], sft_tiny_run["data"]["dev"])
    after = _margin(out, sft_tiny_run["data"]["dev"])
    assert after > before + 0.05, (before, after)
    assert run["status"] == "complete" and "reference-derived" in run["pairs"]
    card = (out / "README.md").read_text()
    assert "stage | `dpo`" in card and "TRL DPOTrainer" in card
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)
    assert "held-out DPO loss 0.693" in stdout


def _margin(model_dir, records_path) -> float:
    """Mean over the held-out reference-derived pairs of log π(chosen | prompt) − log π(rejected | prompt), each the
    sum over the answer's tokens (formatted as DPO and the reward model read them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from heal.feedback.preferences import pubmedqa_pairs
    from heal.models.prompting import format_completion, format_prompt

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    pairs = pubmedqa_pairs(io.read_records(records_path), seed=0)[:16]

    def logprob(prompt: str, answer: str) -> float:
        head = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        tail = tokenizer(format_completion(tokenizer, prompt, answer), add_special_tokens=False)["input_ids"]
        ids = torch.tensor([head + tail])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(head) - 1:-1].float()
        return float(torch.log_softmax(logits, -1).gather(-1, ids[0, len(head):, None]).sum())

    margins = [logprob(p["prompt"], p["chosen"]) - logprob(p["prompt"], p["rejected"]) for p in pairs]
    return sum(margins) / len(margins)


def test_dpo_with_lora_on_a_preference_file(sft_tiny_run, reward_tiny_run, tmp_path, capsys):
    out = tmp_path / "dpo_lora"
    code, _, err = heal(capsys, "dpo", "--dataset_path", reward_tiny_run["pairs"], "--eval_split_size", "0",
                        "--model_name", sft_tiny_run["dir"], "--output_dir", out, "--max_steps", "4", "--use_peft",
                        "--lora_r", "4", "--lora_alpha", "8", *QUICK)
    assert code == 0, err
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out)  # merged: loads without PEFT
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert "preference pairs from" in run_folder.read_run(out)["pairs"]


def test_same_seed_same_lora_dpo_whatever_ran_before(sft_tiny_run, reward_tiny_run, tmp_path, capsys):
    """TRL wraps the policy in LoRA adapters before its Trainer seeds: they are drawn under --seed, not from whatever
    torch's generator holds (in a pipeline, what the stages before consumed)."""
    import torch
    from safetensors.torch import load_file

    weights = []
    for run, draws in enumerate((0, 1000)):
        torch.rand(draws)  # a different generator state before each run
        out = tmp_path / f"dpo{run}"
        code, _, err = heal(capsys, "dpo", "--dataset_path", reward_tiny_run["pairs"], "--eval_split_size", "0",
                            "--model_name", sft_tiny_run["dir"], "--output_dir", out, "--max_steps", "1",
                            "--use_peft", "--lora_r", "4", "--lora_alpha", "8", *QUICK)
        assert code == 0, err
        weights.append(load_file(out / "model.safetensors"))
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_dpo_presets_parse():
    from heal.dpo.train import make_parser

    presets = sorted((REPO / "experiments/configs").glob("dpo_*.yaml"))
    assert presets
    for preset in presets:
        _, training, model_args = make_parser().parse(["--config", str(preset)])
        assert training.beta > 0 and model_args.model_name_or_path


@pytest.mark.parametrize("argv, needles", [
    (["--dataset_path", "{pairs}"], ["--model_name is required"]),
    (["--model_name", "gpt-4o", "--dataset_path", "{pairs}"], ["API models cannot be fine-tuned"]),
    (["--model_name", "{sft}"], ["--dataset_path is required"]),
    (["--model_name", "{sft}", "--dataset", "other", "--dataset_path", "{prompts}"], ["no chosen/rejected"]),
])
def test_dpo_bad_input_is_one_line_and_exit_2(argv, needles, sft_tiny_run, reward_tiny_run, tmp_path, capsys):
    prompts = tmp_path / "prompts.csv"
    io.write_records(prompts, [{"prompt": "Does X help?"}])
    values = {"sft": str(sft_tiny_run["dir"]), "pairs": str(reward_tiny_run["pairs"]), "prompts": str(prompts)}
    out = tmp_path / "out"
    code, _, err = heal(capsys, "dpo", *[a.format(**values) for a in argv], "--output_dir", out)
    assert_one_line_error(code, err, *needles)
    assert not (out / "config.json").exists()
