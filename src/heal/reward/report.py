"""The reward model's card (README.md): backbone, pairs and how they were made, normalisation, pairwise accuracy."""

from __future__ import annotations

from pathlib import Path

from heal.contracts import StageSummary, fmt, loss_curve, run_metrics
from heal.models import run_folder
from heal.models.card import ModelCard

USAGE = """\
from heal.reward.scoring import RewardScorer

scorer = RewardScorer("{path}")
print(scorer.score(["Does X reduce Y?"], ["Yes. X reduced Y in a randomised trial."]))   # normalised rewards

# or plain transformers (raw, unnormalised score):
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained("{path}")
"""


def model_card(folder: Path, script, training, model_args, source: str, train_pairs, eval_pairs, provenance: str,
               metrics: dict, stats: dict) -> ModelCard:
    from heal.data.schema import is_credentialed

    backbone = model_args.model_name_or_path
    data = {"task (--dataset)": script.task(), "pairs file": script.dataset_path, "how the pairs were made": provenance,
            "training pairs": len(train_pairs), "held-out pairs": len(eval_pairs),
            "format": "prompt + answer formatted by heal.models.prompting; score read at the last real token"}
    run = {"trainer": "TRL RewardTrainer (Bradley–Terry: −log σ(r_chosen − r_rejected))",
           "learning rate": f"{training.learning_rate:g}", "epochs / max steps":
           f"{training.num_train_epochs:g} / {training.max_steps}", "max length": training.max_length,
           "seed": training.seed}
    if model_args.use_peft:
        run["LoRA"] = f"r={model_args.lora_r}, alpha={model_args.lora_alpha}, merged (score head fully trained)"
    if stats:
        run["normalisation"] = (f"reward = (raw − {stats['mean']:.4f}) / {stats['std']:.4f}, measured on "
                                f"{stats['measured_on']} (config.json: heal_reward_normalization)")
    files = {run_folder.CONFIG_FILE: "every setting", run_folder.METRICS_FILE: "train/eval loss, accuracy, margin",
             run_folder.CURVE_FILE: "loss curve", run_folder.RUN_FILE: "run identity and status"}
    return ModelCard(
        title=folder.name, stage="reward", base_model=backbone, base_is_hub=source == "hub",
        weights="full model" if not model_args.use_peft else "LoRA merged into the backbone",
        summary=f"A reward model (sequence classifier, one output) trained with HEAL on {script.task()} preference "
                f"pairs; initialised from `{backbone}`.",
        data=data, training=run, metrics=metrics, files=files, usage=USAGE.format(path=folder),
        credentialed=is_credentialed(train_pairs, script.dataset_path), pipeline_tag="text-classification",
    )


def summarize(output: Path) -> StageSummary:
    """The run report's view of a reward model run folder: pairwise accuracy before → after."""
    run, m = run_metrics(output)
    before_after = f"{fmt(m.get('eval_before/accuracy'))} → {fmt(m.get('eval/accuracy'))}"
    results = [("pairwise accuracy, held-out pairs (before → after)", before_after)] if "eval/accuracy" in m else []
    return StageSummary(headline=f"pairwise accuracy {before_after} ({run.get('data', {}).get('eval_pairs', '?')} "
                                 "held-out pairs)", metrics=m, results=results, curves=loss_curve(output))
