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

from heal import runs
from heal.config import make_parser as _make_parser
from heal.contracts import StageSummary, VerbContract, loss_curve, run_metrics
from heal.dpo.config import CONFIG_TYPES, LEARNING_RATES, DPOModelConfig, DPOScriptConfig, HealDPOConfig
from heal.models import run_folder

STAGE = "dpo"
# Before training the policy is the reference, so its implicit rewards (and their accuracy) are 0 by construction:
# the loss (ln 2 at the start) is the before/after measure.
KEY_METRICS = ("eval_before/loss", "eval/loss", "eval/rewards/accuracies", "eval/rewards/margins", "train/mean_loss",
               "train/global_step", "train/wall_seconds")


def summarize(output: Path) -> StageSummary:
    """The run report's view of a DPO run folder: its loss curve."""
    return StageSummary(metrics=run_metrics(output)[1], curves=loss_curve(output))


CONTRACT = VerbContract(output="folder", inputs=("dataset_path", "eval_dataset_path", "resume_from_checkpoint"),
                        models=("model_name_or_path",), overwrite_field="overwrite_output_dir", summarize=summarize)


def make_parser():
    return _make_parser("heal dpo", __doc__.split("\n")[0], *CONFIG_TYPES)


def main(script: DPOScriptConfig, training: HealDPOConfig, model_args: DPOModelConfig) -> dict:
    from accelerate import PartialState

    from heal.reward.data import load_pairs

    folder = Path(training.output_dir)
    # 1. Check the request and the output folder before anything heavy.
    policy = runs.require_policy(model_args.model_name_or_path, "DPO")
    fingerprint = {"stage": STAGE, "model": policy, "dataset": script.task(), "judge": script.judge,
                   "dataset_path": runs.resolved_path(script.dataset_path), "use_peft": model_args.use_peft}
    plan = runs.plan_output_dir(folder, STAGE, fingerprint, training.resume_from_checkpoint,
                                script.overwrite_output_dir)
    # 2. Data: bad pairs are reported before the output folder is touched (AI-labelled pairs are made in it).
    if not script.judge:
        train_pairs, eval_pairs, provenance = load_pairs(script, policy, folder)
    # 3. Claim the folder: new, resumed (metrics.jsonl cut back to the checkpoint) or overwritten.
    checkpoint = runs.claim(plan)
    with runs.failure_recorded(folder):
        if script.judge:  # AI labelling keeps its pairs in the run folder
            train_pairs, eval_pairs, provenance = load_pairs(script, policy, folder)
        # 4. Model, and the defaults that depend on it.
        model, tokenizer, info = runs.load_policy(model_args, training, policy)
        _resolve_defaults(training, model_args, policy, bool(eval_pairs), checkpoint)
        # 5. Resolved config; 6. trainer; 7. train and evaluate; 8. final model; 9. card, publish.
        runs.write_config(folder, script, training, model_args)
        trainer = _build_trainer(model, tokenizer, training, model_args, train_pairs, eval_pairs)
        results = runs.train_and_evaluate(trainer, checkpoint)
        weights = runs.save_final(trainer, tokenizer, model_args, folder)
        if PartialState().is_main_process:
            run = _finish(folder, script, training, model_args, info, train_pairs, eval_pairs, provenance, results,
                          weights, checkpoint)
            _print_summary(run, folder)
    return runs.summary(folder)


def _resolve_defaults(training: HealDPOConfig, model_args, policy: str, has_eval: bool, checkpoint) -> None:
    from transformers.trainer_utils import IntervalStrategy

    if training.learning_rate is None:
        training.learning_rate = LEARNING_RATES.pick(runs.built_from_heal_tiny(policy), model_args.use_peft)
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

    class HealDPOTrainer(runs.NoTrlModelCard, DPOTrainer):
        pass

    return HealDPOTrainer(model=model, args=training, processing_class=tokenizer,
                          train_dataset=_dataset(tokenizer, train_pairs),
                          eval_dataset=_dataset(tokenizer, eval_pairs) if eval_pairs else None,
                          peft_config=get_peft_config(model_args),
                          callbacks=[runs.metrics_callback(training.output_dir)])


def _finish(folder: Path, script, training, model_args, info, train_pairs, eval_pairs, provenance: str,
            results: dict, weights: str, checkpoint: str | None) -> dict:
    from heal.data.schema import is_credentialed
    from heal.models.card import CAUSAL_LM_USAGE, ModelCard

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
        usage=CAUSAL_LM_USAGE.format(path=folder))
    return runs.publish(folder, card, weights=weights, metrics=metrics, pairs=provenance,
                        data={"train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs)},
                        resumed_from_step=runs.checkpoint_step(checkpoint))


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
