"""What an SFT run reports: its key metrics (heal_run.json) and its model card (README.md)."""

from __future__ import annotations

from pathlib import Path

from heal.contracts import StageSummary, fmt, loss_curve, run_metrics
from heal.models import run_folder
from heal.models.card import ModelCard

USAGE = """\
from transformers import AutoModelForCausalLM, AutoTokenizer
from heal.models.prompting import format_prompt

model = AutoModelForCausalLM.from_pretrained("{path}")
tokenizer = AutoTokenizer.from_pretrained("{path}")
inputs = tokenizer(format_prompt(tokenizer, "Question: ..."), return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=64, do_sample=False)
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
"""


KEY_METRICS = ("eval_before/loss", "eval/loss", "eval_before/mean_token_accuracy", "eval/mean_token_accuracy",
               "train/last_loss", "train/mean_loss", "train/global_step", "train/epochs", "train/wall_seconds")


def metrics_summary(results: dict, training, ranks: list[dict]) -> dict:
    """The run's key metrics, namespaced: eval loss before/after, train loss, steps, tokens, throughput."""
    last_train = [r for r in run_folder.read_metrics(training.output_dir) if "train/loss" in r]
    if last_train:
        results = {**results, "train/last_loss": last_train[-1]["train/loss"]}
    metrics = {k: results[k] for k in KEY_METRICS if results.get(k) is not None}
    tokens = sum(r.get("tokens", 0) for r in ranks)
    metrics["train/tokens_this_run"] = tokens
    if results.get("train/wall_seconds"):
        metrics["train/tokens_per_second"] = tokens / results["train/wall_seconds"]
    return metrics


def model_card(folder: Path, script, training, model_args, info, train_records: list[dict], eval_records: list[dict],
               metrics: dict, weights: str, credentialed: bool) -> ModelCard:
    base = info.base or info.name
    data = {
        "task (--dataset)": script.task(),
        "training file": script.dataset_path,
        "training records": len(train_records),
        "eval records": (f"{len(eval_records)} from {script.eval_dataset_path}" if script.eval_dataset_path else
                         f"{len(eval_records)} held out of the training file (seeded {script.eval_split_size:g} "
                         "split)" if eval_records else "none"),
        "format": "prompt → completion, loss on completion tokens only; prompts by heal.models.prompting",
    }
    if info.source == "heal-tiny":
        data["tokenizer"] = "byte-level BPE trained on the training records' prompts and completions (heal-tiny)"
    batch = training.per_device_train_batch_size * training.gradient_accumulation_steps * training.world_size
    run = {
        "trainer": "TRL SFTTrainer",
        "learning rate": f"{training.learning_rate:g} ({training.lr_scheduler_type.value} schedule)",
        "effective batch": f"{batch} sequences ({training.per_device_train_batch_size} per device × "
                           f"{training.gradient_accumulation_steps} accumulation × {training.world_size} processes)",
        "epochs / max steps": f"{training.num_train_epochs:g} / {training.max_steps}",
        "max length": f"{training.max_length} tokens" + (" (packed)" if training.packing else ""),
        "precision": "bf16" if training.bf16 else "fp16" if training.fp16 else "fp32",
        "seed": training.seed,
    }
    if model_args.use_peft:
        run["LoRA"] = (f"r={model_args.lora_r}, alpha={model_args.lora_alpha}, dropout={model_args.lora_dropout}, "
                       f"targets={model_args.lora_target_modules or 'PEFT default for the architecture'}")
    files = {
        "weights": weights,
        run_folder.CONFIG_FILE: f"every setting; rerun with `heal sft --config {run_folder.CONFIG_FILE}`",
        run_folder.METRICS_FILE: "one JSON object per logged step (train/loss, eval/loss, …)",
        run_folder.CURVE_FILE: "train and eval loss against optimizer steps",
        run_folder.RUN_FILE: "run identity, status, per-rank counts",
    }
    return ModelCard(
        title=folder.name, stage="sft", base_model=base, base_is_hub=info.source == "hub", weights=weights,
        summary=f"`{base}` after supervised fine-tuning (SFT) with HEAL on {script.task()} prompt/completion records.",
        data=data, training=run, metrics=metrics, credentialed=credentialed, files=files,
        usage=USAGE.format(path=folder),
    )


def summarize(output: Path) -> StageSummary:
    """The run report's view of an SFT run folder."""
    _, m = run_metrics(output)
    return StageSummary(headline=f"{fmt(m.get('train/global_step'))} steps, last loss {fmt(m.get('train/last_loss'))}",
                        metrics=m, curves=loss_curve(output))
