"""`heal sft`: it learns, it writes a complete run folder, LoRA/packing work, bad input is one line + exit 2."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import QUICK_FLAGS, TINY_FLAGS
from helpers import REPO, assert_one_line_error, heal

from heal.data.io import read_records, write_records
from heal.errors import HealError
from heal.models import run_folder


def _sft(tmp_path, data, *extra, name="run"):
    return ["sft", "--dataset", "pubmedqa", "--dataset_path", str(data["train"]), "--model_name", "heal-tiny",
            "--output_dir", str(tmp_path / name), *TINY_FLAGS, *QUICK_FLAGS, *extra]


def heal_ok(argv) -> bool:
    from heal.cli import run

    return run([str(a) for a in argv]) == 0


def _initial_weights(folder: Path):
    """heal-tiny as it was before training: same tokenizer, same size, same seed (the build is deterministic)."""
    from transformers import AutoTokenizer

    from heal.models.tiny import TinyConfig, build_model

    config = run_folder.read_run(folder)["fingerprint"]
    tiny = TinyConfig(**{k: v for k, v in config.items() if k.startswith("tiny_")})
    return build_model(AutoTokenizer.from_pretrained(folder), tiny, seed=config["seed"])


# --- it learns ------------------------------------------------------------------------------------------------------

def test_sft_lowers_eval_loss_and_changes_every_weight_matrix(sft_tiny_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = sft_tiny_run["dir"]
    run = run_folder.read_run(folder)
    metrics = run["metrics"]
    assert run["status"] == "complete"
    assert metrics["eval/loss"] < metrics["eval_before/loss"] - 1.0, metrics  # ≈7.2 → ≈5 in 40 steps
    assert metrics["train/global_step"] == 40
    rank = run["distributed"]["ranks"][0]
    assert 0 < rank["loss_tokens"] < 0.3 * rank["tokens"]  # the loss is on completions only, not on prompts
    trained = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    initial = dict(_initial_weights(folder).named_parameters())
    changed = {name for name, p in trained.named_parameters() if not torch.equal(p, initial[name])}
    matrices = {name for name, p in trained.named_parameters() if p.dim() == 2}
    assert matrices <= changed


def test_run_folder_holds_model_card_config_metrics_curve_and_checkpoints(sft_tiny_run):
    from heal.sft.train import make_parser

    folder, data = sft_tiny_run["dir"], sft_tiny_run["data"]
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "resolved_config.yaml",
            "metrics.jsonl", "loss_curve.png", "heal_run.json", "checkpoint-20", "checkpoint-40"} <= names
    assert run_folder.STAGING not in names
    card = (folder / "README.md").read_text()
    for needle in ("heal-tiny", "stage | `sft`", str(data["train"]), "eval_before/loss", "eval/loss",
                   "full model", "resolved_config.yaml", "270"):
        assert needle in card, needle
    rows = run_folder.read_metrics(folder)
    assert [r["step"] for r in rows if "train/loss" in r] == list(range(5, 41, 5))
    assert [r["step"] for r in rows if "eval/loss" in r] == [0, 20, 40]  # step 0: before training
    assert (folder / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the resolved config reproduces the run: every key is a flag, and the values come back as they were
    config = yaml.safe_load((folder / "resolved_config.yaml").read_text())
    assert (config["learning_rate"], config["max_length"], config["model_name_or_path"]) == (3e-3, 1024, "heal-tiny")
    script, training, model_args, tiny = make_parser().parse(["--config", str(folder / "resolved_config.yaml")])
    assert (script.dataset_path, training.max_steps, tiny.tiny_hidden_size) == (str(data["train"]), 40, 64)


def test_lora_trains_only_the_adapted_matrices_and_saves_them_merged(tmp_path, pubmedqa_sft_data):
    from transformers import AutoModelForCausalLM

    argv = _sft(tmp_path, pubmedqa_sft_data, "--use_peft", "--lora_r", "4", "--lora_alpha", "8",
                "--lora_target_modules", "q_proj", "v_proj", "--max_steps", "20", "--learning_rate", "1e-2",
                "--eval_split_size", "0", "--save_strategy", "no")
    assert heal_ok(argv)
    folder = tmp_path / "run"
    run = run_folder.read_run(folder)
    assert "merged" in run["weights"] and not (folder / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(folder)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    initial = dict(_initial_weights(folder).named_parameters())
    changed = {name for name, p in merged.named_parameters() if not torch.equal(p, initial[name])}
    assert changed == {f"model.layers.{i}.self_attn.{m}.weight" for i in range(2) for m in ("q_proj", "v_proj")}
    assert "LoRA" in (folder / "README.md").read_text()


def test_packing_trains_on_several_sequences_per_row(tmp_path, pubmedqa_sft_data):
    argv = _sft(tmp_path, pubmedqa_sft_data, "--packing", "--max_length", "512", "--max_steps", "10",
                "--per_device_train_batch_size", "2", "--eval_split_size", "0", "--save_strategy", "no")
    assert heal_ok(argv)
    rank = run_folder.read_run(tmp_path / "run")["distributed"]["ranks"][0]
    # 2 packed rows of ≤512 tokens per step hold more than 2 of these ~250-token examples
    assert rank["micro_batches"] == 10 and rank["sequences"] > 2 * 10


# --- seed columns ---------------------------------------------------------------------------------------------------

def test_seed_style_pubmedqa_columns_are_turned_into_prompt_and_completion(tmp_path):
    from heal.data.pubmedqa import format_completion, format_prompt
    from heal.sft.data import load_sft_records

    path = tmp_path / "seed.csv"
    write_records(path, [{"id": "0012345", "question": "Does X help?", "context": "RESULTS: it did.",
                          "long_answer": "X helps.", "final_decision": "yes"}])
    (record,) = load_sft_records(str(path), "pubmedqa")
    assert record["prompt"] == format_prompt("Does X help?", "RESULTS: it did.")
    assert record["completion"] == format_completion("yes", "X helps.") == "Yes. X helps."
    assert record["id"] == "0012345"  # CSV ids stay strings


def test_mimic_text_summary_columns_use_the_discharge_me_prompt(tmp_path):
    from heal.data.mimic import PROMPTS
    from heal.sft.data import load_sft_records

    path = tmp_path / "mimic.jsonl"
    write_records(path, [{"text": "Chief Complaint: cough", "summary": "Treated for pneumonia."}])
    (record,) = load_sft_records(str(path), "mimic")
    assert record["prompt"] == PROMPTS["bhc"].format(note="Chief Complaint: cough")
    assert record["completion"] == "Treated for pneumonia."


def test_eval_split_is_seeded_and_disjoint():
    from heal.data.splits import split_eval

    records = [{"id": str(i)} for i in range(50)]
    train, held = split_eval(records, 0.2, seed=1)
    assert len(held) == 10 and len(train) == 40
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    assert split_eval(records, 0.2, seed=1) == (train, held)
    with pytest.raises(HealError, match="leaves no training records"):
        split_eval(records, 50, seed=1)


# --- bad input: one line, exit 2, and no run folder left behind ---------------------------------------------------

def _bad(capsys, tmp_path, argv, *needles):
    code, _, err = heal(capsys, *argv)
    assert_one_line_error(code, err, *needles)
    return err


def test_missing_columns_name_the_file_and_what_it_has(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    write_records(path, [{"id": "1", "text_in": "a", "text_out": "b"}])
    _bad(capsys, tmp_path, ["sft", "--dataset", "pubmedqa", "--dataset_path", path, "--output_dir", tmp_path / "o"],
         str(path), "missing column(s) prompt, completion", "found: id, text_in, text_out")
    assert not (tmp_path / "o").exists()


def test_empty_dataset_and_missing_file(capsys, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("prompt,completion\n")
    _bad(capsys, tmp_path, ["sft", "--dataset_path", path, "--output_dir", tmp_path / "o"], str(path), "no records")
    _bad(capsys, tmp_path, ["sft", "--dataset_path", tmp_path / "none.csv", "--output_dir", tmp_path / "o"],
         "none.csv", "not found")
    _bad(capsys, tmp_path, ["sft", "--output_dir", tmp_path / "o"], "--dataset_path is required")


def test_wrong_task_for_the_records_is_caught(capsys, tmp_path, pubmedqa_sft_data):
    _bad(capsys, tmp_path, ["sft", "--dataset", "mimic", "--dataset_path", pubmedqa_sft_data["train"],
                            "--output_dir", tmp_path / "o"], "records are task pubmedqa but --dataset is mimic")


@pytest.mark.parametrize("name", ["gpt-4", "claude-3-opus"])
def test_api_model_names_fail_at_once(capsys, tmp_path, pubmedqa_sft_data, name):
    _bad(capsys, tmp_path, ["sft", "--dataset_path", pubmedqa_sft_data["train"], "--model_name", name,
                            "--output_dir", tmp_path / "o"],
         f"--model_name {name}", "API models cannot be fine-tuned locally", "RLAIF judge")


def test_model_path_that_does_not_exist(capsys, tmp_path, pubmedqa_sft_data):
    _bad(capsys, tmp_path, ["sft", "--dataset_path", pubmedqa_sft_data["train"], "--model_name",
                            tmp_path / "models" / "policy", "--output_dir", tmp_path / "o"],
         "model folder does not exist")


def test_qlora_on_cpu_is_refused_clearly(capsys, tmp_path, pubmedqa_sft_data):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _bad(capsys, tmp_path, ["sft", "--dataset_path", pubmedqa_sft_data["train"], "--model_name", "heal-tiny",
                            "--use_peft", "--load_in_4bit", "--output_dir", tmp_path / "o"],
         "--load_in_4bit (QLoRA) needs a CUDA GPU", "--use_peft (LoRA) without it")


def test_output_dir_holding_another_run_or_other_files_is_not_touched(capsys, tmp_path, sft_tiny_run):
    data = sft_tiny_run["data"]
    folder = sft_tiny_run["dir"]
    before = sorted(p.name for p in folder.iterdir())
    other = ["sft", "--dataset_path", data["dev"], "--model_name", "heal-tiny", "--output_dir", folder, *TINY_FLAGS]
    _bad(capsys, tmp_path, other, "holds a different run", "dataset_path", "--overwrite_output_dir")
    same = [str(a) for a in sft_tiny_run["argv"][1:]]
    _bad(capsys, tmp_path, ["sft", *same], "already holds a finished run")
    assert sorted(p.name for p in folder.iterdir()) == before
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    _bad(capsys, tmp_path, ["sft", "--dataset_path", data["train"], "--output_dir", foreign,
                            "--overwrite_output_dir"], "not empty and not a HEAL run folder")
    assert (foreign / "notes.txt").read_text() == "keep me"
    _bad(capsys, tmp_path, ["sft", "--dataset_path", data["train"], "--output_dir", tmp_path / "fresh",
                            "--resume_from_checkpoint", "last"], "no checkpoint to resume from")


def test_bad_config_file_is_one_line(capsys, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("dataset: pubmedqa\nlerning_rate: 1\n")
    _bad(capsys, tmp_path, ["sft", "--config", config], "unknown key(s) lerning_rate")


# --- shipped configs ------------------------------------------------------------------------------------------------

SFT_CONFIGS = sorted((REPO / "experiments" / "configs").glob("sft_*.yaml"))


def test_sft_presets_exist():
    assert {p.name for p in SFT_CONFIGS} >= {"sft_tiny_cpu.yaml", "sft_qwen0.5b_full.yaml", "sft_qwen0.5b_lora.yaml",
                                             "sft_llama8b_qlora.yaml"}


@pytest.mark.parametrize("path", SFT_CONFIGS, ids=lambda p: p.name)
def test_sft_presets_parse(path):
    from heal.sft.train import make_parser

    script, training, model_args, tiny = make_parser().parse(["--config", str(path)])
    assert training.output_dir and model_args.model_name_or_path and script.dataset_path


ACCELERATE_CONFIGS = sorted((REPO / "experiments" / "configs" / "accelerate").glob("*.yaml"))


def test_accelerate_configs_exist():
    assert {p.stem for p in ACCELERATE_CONFIGS} >= {"ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3"}


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_accelerate_configs_parse_with_accelerate(path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(path))
    expected = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed_zero2": "DEEPSPEED", "deepspeed_zero3": "DEEPSPEED"}
    assert str(config.distributed_type).split(".")[-1] == expected[path.stem]
    if path.stem.startswith("deepspeed"):
        assert config.deepspeed_config["zero_stage"] == int(path.stem[-1])
    if path.stem == "fsdp":
        assert config.fsdp_config["fsdp_version"] == 2


def test_a_run_that_fails_after_starting_is_marked_failed_and_holds_no_model(capsys, tmp_path, pubmedqa_sft_data):
    argv = _sft(tmp_path, pubmedqa_sft_data, "--max_length", "4096", "--max_steps", "2")  # > heal-tiny's 1024
    _bad(capsys, tmp_path, argv, "--max_length 4096 exceeds the model's max_position_embeddings 1024")
    folder = tmp_path / "run"
    assert run_folder.read_run(folder)["status"] == "failed"
    assert not (folder / "config.json").exists() and not (folder / "model.safetensors").exists()
    assert heal_ok(_sft(tmp_path, pubmedqa_sft_data, "--max_steps", "2", "--eval_split_size", "0",
                        "--save_strategy", "no"))  # same run again: nothing worth keeping, so it starts over
    assert run_folder.read_run(folder)["status"] == "complete"
