"""`heal dpo`: direct preference optimisation of a policy on preference pairs (TRL DPOTrainer).

    heal dpo --dataset pubmedqa --dataset_path data/processed/pubmedqa.csv \
        --model_name models/policy_model/pubmedqa_sft --output_dir models/policy_model/pubmedqa_dpo
    heal dpo --dataset_path pairs.jsonl --model_name models/policy_model/pubmedqa_sft --use_peft --lora_r 16 …
    heal dpo --config experiments/configs/dpo_tiny_cpu.yaml

The pairs come exactly as `heal reward` takes them (heal.reward.data): a preference file, reference-derived pairs
from a `heal prep` file, or pairs an AI judge labelled (--judge). Prompts and answers are formatted by
heal.models.prompting, as in every stage. The reference model is the initial policy (with LoRA: the policy with its
adapters disabled). Loss: −log σ(β·[(log π − log π_ref)(chosen) − (log π − log π_ref)(rejected)]); the held-out
DPO loss is measured before (ln 2: the policy is the reference) and after, with the implicit-reward accuracy. Same
output folder layout as `heal sft`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from heal.config import make_parser as _make_parser
from heal.models import run_folder
from heal.dpo.config import CONFIG_TYPES, LR_FULL, LR_LORA, LR_SMALL, DPOModelConfig, DPOScriptConfig, HealDPOConfig

STAGE = "dpo"
# Before training the policy is the reference, so its implicit rewards (and their accuracy) are 0 by construction:
# the loss (ln 2 at the start) is the before/after measure.
KEY_METRICS = ("eval_before/loss", "eval/loss", "eval/rewards/accuracies", "eval/rewards/margins", "train/mean_loss",
               "train/global_step", "train/wall_seconds")


def make_parser():
    return _make_parser("heal dpo", __doc__.split("\n")[0], *CONFIG_TYPES)


def main(script: DPOScriptConfig, training: HealDPOConfig, model_args: DPOModelConfig) -> dict:
    from accelerate import PartialState

    from heal.ppo.models import require_policy
    from heal.ppo.setup import claim_run_folder
    from heal.reward.data import load_pairs
    from heal.sft.train import _save_final, _train_and_evaluate

    state = PartialState()
    policy = require_policy(model_args.model_name_or_path, "DPO")
    folder = Path(training.output_dir)
    fingerprint = {"stage": STAGE, "model": policy, "dataset": script.task(), "judge": script.judge,
                   "dataset_path": str(Path(script.dataset_path).resolve()) if script.dataset_path else None,
                   "use_peft": model_args.use_peft}
    resume = str(training.resume_from_checkpoint or "").lower() not in ("", "false", "none", "no")
    run_folder.check_output_dir(folder, fingerprint, resume, script.overwrite_output_dir)  # fail before any work
    if not script.judge:  # bad pairs are reported before the output folder is touched
        train_pairs, eval_pairs, provenance = load_pairs(script, policy, folder)
    checkpoint = claim_run_folder(folder, fingerprint, training.resume_from_checkpoint, script.overwrite_output_dir,
                                  STAGE, state)
    if script.judge:  # AI labelling keeps its pairs in the run folder
        train_pairs, eval_pairs, provenance = load_pairs(script, policy, folder)
    model, tokenizer, info = _load(model_args, training, policy)
    _resolve_defaults(training, model_args, policy, bool(eval_pairs), checkpoint)
    if state.is_main_process:
        run_folder.write_config(folder, {**run_folder.config_dict(script, training, model_args),
                                        "resume_from_checkpoint": None})
    trainer = _build_trainer(model, tokenizer, training, model_args, train_pairs, eval_pairs)
    results = _train_and_evaluate(trainer, checkpoint)
    weights = _save_final(trainer, tokenizer, model_args, folder)
    if state.is_main_process:
        run = _finish(folder, script, training, model_args, info, train_pairs, eval_pairs, provenance, results,
                      weights, checkpoint)
        _print_summary(run, folder)
    state.wait_for_everyone()
    return run_folder.read_run(folder) or {}


def _load(model_args: DPOModelConfig, training: HealDPOConfig, policy: str):
    from heal.models.loading import load_policy
    from heal.models.prompting import stop_token_ids

    kwargs = {"dtype": model_args.dtype} if model_args.dtype else {}
    model, tokenizer, info = load_policy(policy, revision=model_args.model_revision,
                                         trust_remote_code=training.trust_remote_code, **kwargs)
    model.generation_config.eos_token_id = stop_token_ids(tokenizer)  # generation stops where answers end
    return model, tokenizer, info


def _resolve_defaults(training: HealDPOConfig, model_args, policy: str, has_eval: bool, checkpoint) -> None:
    from transformers.trainer_utils import IntervalStrategy

    from heal.ppo.models import built_from_heal_tiny

    if training.learning_rate is None:
        training.learning_rate = (LR_SMALL if built_from_heal_tiny(policy) else
                                  LR_LORA if model_args.use_peft else LR_FULL)
    if not has_eval:
        training.eval_strategy = IntervalStrategy.NO
        training.do_eval = False
    training.eval_on_start = training.eval_on_start or (has_eval and checkpoint is None)


def _dataset(tokenizer, pairs: list[dict]):
    from datasets import Dataset

    from heal.models.prompting import format_completion, format_prompt

    return Dataset.from_list([{"prompt": format_prompt(tokenizer, p["prompt"]),
                               "chosen": format_completion(tokenizer, p["prompt"], p["chosen"]),
                               "rejected": format_completion(tokenizer, p["prompt"], p["rejected"])} for p in pairs])


def _build_trainer(model, tokenizer, training, model_args, train_pairs, eval_pairs):
    from trl import DPOTrainer, get_peft_config

    from heal.sft.trainer import MetricsCallback

    class HealDPOTrainer(DPOTrainer):
        def create_model_card(self, *args, **kwargs):
            """HEAL writes its own card once the final model is saved (see heal.sft.trainer for why)."""

    return HealDPOTrainer(model=model, args=training, processing_class=tokenizer,
                          train_dataset=_dataset(tokenizer, train_pairs),
                          eval_dataset=_dataset(tokenizer, eval_pairs) if eval_pairs else None,
                          peft_config=get_peft_config(model_args), callbacks=[MetricsCallback(training.output_dir)])


def _finish(folder: Path, script, training, model_args, info, train_pairs, eval_pairs, provenance: str,
            results: dict, weights: str, checkpoint: str | None) -> dict:
    from heal.data.schema import is_credentialed
    from heal.models.card import ModelCard
    from heal.ppo.report import USAGE
    from heal.ppo.setup import checkpoint_step

    run_folder.plot_loss_curve(folder, f"{folder.name}: DPO on {script.task()}")
    metrics = {k: results[k] for k in KEY_METRICS if results.get(k) is not None}
    base = info.base or info.name
    card = ModelCard(
        title=folder.name, stage="dpo", base_model=base, base_is_hub=info.source == "hub", weights=weights,
        summary=f"`{base}` after direct preference optimisation (DPO) with HEAL on {script.task()} preference pairs.",
        data={"pairs file": script.dataset_path, "how the pairs were made": provenance,
              "training pairs": len(train_pairs), "held-out pairs": len(eval_pairs)},
        training={"trainer": "TRL DPOTrainer", "loss": ", ".join(training.loss_type), "beta": training.beta,
                  "learning rate": f"{training.learning_rate:g}", "reference": "the initial policy",
                  "epochs / max steps": f"{training.num_train_epochs:g} / {training.max_steps}"},
        metrics=metrics, credentialed=is_credentialed(train_pairs, script.dataset_path),
        files={run_folder.CONFIG_FILE: "every setting", run_folder.METRICS_FILE: "train/eval loss, rewards/accuracies",
               run_folder.CURVE_FILE: "loss curve", run_folder.RUN_FILE: "run identity and status"},
        usage=USAGE.format(path=folder))
    card.write(folder / run_folder.STAGING)
    files = run_folder.publish(folder)
    return run_folder.update_run(folder, status="complete", weights=weights, files=files, metrics=metrics,
                                pairs=provenance, data={"train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs)},
                                resumed_from_step=checkpoint_step(checkpoint))


def _print_summary(run: dict, folder: Path) -> None:
    m = run.get("metrics", {})
    acc = ""
    if "eval/loss" in m:
        before = f"{m['eval_before/loss']:.4f} → " if "eval_before/loss" in m else ""
        acc = (f"; held-out DPO loss {before}{m['eval/loss']:.4f}, implicit-reward accuracy "
               f"{m.get('eval/rewards/accuracies', float('nan')):.1%}")
    print(f"heal dpo: {run['data']['train_pairs']} training pairs ({run['pairs']}){acc}\n"
          f"  policy ({run['weights']}) → {folder}; model card, metrics.jsonl, loss_curve.png beside it")


if __name__ == "__main__":
    from heal.cli import run as _run

    sys.exit(_run(["dpo", *sys.argv[1:]]))
