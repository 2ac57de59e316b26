"""`heal grpo`: group relative policy optimisation against a reward model, an AI judge or a rule (TRL GRPOTrainer).

    heal grpo --model_name models/policy_model/pubmedqa_sft --reward rule:pubmedqa \
        --dataset_path data/processed/pubmedqa.csv --output_dir models/policy_model/pubmedqa_grpo
    heal grpo --model_name models/policy_model/pubmedqa_sft --reward_model_path models/reward_model/pubmedqa …
    heal grpo --config experiments/configs/grpo_tiny_cpu.yaml

The same data contract and reward sources as `heal ppo` (heal.ppo.data, heal.grpo.rewards): prompt records (default:
the reward model's prompts), a reward model, `--reward judge:<spec>` or `--reward rule:pubmedqa`. GRPO samples
`num_generations` completions per prompt and uses the group's mean reward as the baseline instead of a value model.
Before and after training the held-out prompts are answered greedily and scored exactly as `heal ppo` scores them
(heal.ppo.evaluate), so the two are comparable. Same output folder layout as every HEAL stage.
"""

from __future__ import annotations

import sys
from pathlib import Path

from heal.config import make_parser as _make_parser
from heal.errors import HealError
from heal.grpo.config import CONFIG_TYPES, LR_FULL, LR_LORA, LR_SMALL, GRPOModelConfig, GRPOScriptConfig, HealGRPOConfig
from heal.models import run_folder

STAGE = "grpo"
KEY_METRICS = ("eval_before/score", "eval/score", "eval_before/accuracy", "eval/accuracy", "train/mean_loss",
               "train/global_step", "train/wall_seconds")


def make_parser():
    return _make_parser("heal grpo", __doc__.split("\n")[0], *CONFIG_TYPES)


def main(script: GRPOScriptConfig, training: HealGRPOConfig, model_args: GRPOModelConfig) -> dict:
    from accelerate import PartialState

    from heal.data.schema import is_credentialed
    from heal.ppo.data import split_prompts
    from heal.ppo.models import require_policy
    from heal.ppo.rewards import parse_reward

    state = PartialState()
    policy = require_policy(model_args.model_name_or_path, "GRPO")
    check_sampling(training)
    if script.value_model_path:
        raise HealError("--value_model_path: GRPO has no value model (the group's mean reward is the baseline)")
    kind, reward_model = parse_reward(script.reward, training.reward_model_path)
    if kind == "model":
        from heal.ppo.rewards import require_reward_model

        require_reward_model(reward_model)  # before any model is loaded
    train_records, eval_records, prompts_path = split_prompts(
        script, training.reward_model_path if kind == "model" else None, training.seed)
    folder = Path(training.output_dir)
    checkpoint = _claim(folder, script, training, policy, prompts_path, state)
    credentialed = is_credentialed(train_records, prompts_path)
    model, tokenizer, info = _load(model_args, training, policy)
    if training.learning_rate is None:
        from heal.ppo.models import built_from_heal_tiny

        training.learning_rate = (LR_SMALL if built_from_heal_tiny(policy) else
                                  LR_LORA if model_args.use_peft else LR_FULL)
    if state.is_main_process:
        run_folder.write_config(folder, {**run_folder.config_dict(script, training, model_args),
                                        "resume_from_checkpoint": None})
    trainer = _build_trainer(model, tokenizer, training, model_args, script, train_records, credentialed)
    results = _train_and_evaluate(trainer, script, training, eval_records, credentialed, checkpoint)
    from heal.sft.train import _save_final

    weights = _save_final(trainer, tokenizer, model_args, folder)
    if state.is_main_process:
        run = _finish(folder, script, training, info, prompts_path, train_records, eval_records, results, weights,
                      checkpoint, credentialed)
        _print_summary(run, folder)
    state.wait_for_everyone()
    return run_folder.read_run(folder) or {}


def _claim(folder: Path, script, training, policy: str, prompts_path: str, state) -> str | None:
    from heal.ppo.setup import claim_run_folder

    fingerprint = {"stage": STAGE, "model": policy, "reward": script.reward or training.reward_model_path,
                   "dataset_path": str(Path(prompts_path).resolve())}
    return claim_run_folder(folder, fingerprint, training.resume_from_checkpoint, script.overwrite_output_dir, STAGE,
                            state)


def _load(model_args, training, policy: str):
    """(model, tokenizer, info) with a generation config holding only special-token ids: TRL fills whatever its own
    GenerationConfig leaves unset from the model's, and GRPO's log-probabilities are those of pure temperature
    sampling (heal.models.sampling)."""
    from heal.dpo.train import _load as load_policy_for_training
    from heal.models.sampling import ids_only

    model, tokenizer, info = load_policy_for_training(model_args, training, policy)
    model.generation_config = ids_only(model.generation_config)
    return model, tokenizer, info


def check_sampling(training) -> None:
    """GRPO trains on log π(token) at the temperature; sampling from any other distribution would bias it."""
    changed = [f"--{name} {value}" for name, value, neutral in (
        ("top_k", training.top_k, (0, None)), ("top_p", training.top_p, (1.0, None)), ("min_p", training.min_p, (None,)),
        ("repetition_penalty", training.repetition_penalty, (1.0, None))) if value not in neutral]
    changed += [f"--generation_kwargs {key}" for key in (training.generation_kwargs or {})
                if key not in ("max_new_tokens", "eos_token_id", "pad_token_id", "bos_token_id")]
    if changed:
        raise HealError(f"{', '.join(changed)}: GRPO's loss uses the log-probabilities of plain temperature sampling; "
                        "sampling with these would train on another distribution. Leave them at their defaults "
                        "(use --temperature)")


def _dataset(tokenizer, records: list[dict], system: str | None):
    """TRL prompt records: the formatted prompt, plus the raw prompt and the columns judges and rules read."""
    from datasets import Dataset

    from heal.models.prompting import format_prompt

    def text(value) -> str:
        return "" if value is None else str(value)

    return Dataset.from_list([{"prompt": format_prompt(tokenizer, str(r["prompt"]), system),
                               "raw_prompt": str(r["prompt"]), "label": text(r.get("label")),
                               "reference": text(r.get("reference")), "source": text(r.get("source"))}
                              for r in records])


def _build_trainer(model, tokenizer, training, model_args, script, records: list[dict], credentialed: bool):
    from trl import GRPOTrainer, get_peft_config

    from heal.grpo.rewards import make_reward_function
    from heal.sft.trainer import MetricsCallback

    class HealGRPOTrainer(GRPOTrainer):
        def create_model_card(self, *args, **kwargs):
            """HEAL writes its own card once the final model is saved (see heal.sft.trainer for why)."""

    return HealGRPOTrainer(model=model, reward_funcs=make_reward_function(script, training, credentialed),
                           args=training, train_dataset=_dataset(tokenizer, records, script.system_prompt),
                           processing_class=tokenizer, peft_config=get_peft_config(model_args),
                           callbacks=[MetricsCallback(training.output_dir)])


def _train_and_evaluate(trainer, script, training, eval_records: list[dict], credentialed: bool,
                        checkpoint: str | None) -> dict:
    """Held-out greedy answers scored like `heal ppo` scores them, before and after `trainer.train()`."""
    import time

    from heal.ppo.evaluate import evaluate
    from heal.ppo.rewards import make_reward_source
    from heal.ppo.rollout import RolloutSettings

    tokenizer = trainer.processing_class
    results: dict = {}
    if eval_records:
        from heal.models.prompting import stop_token_ids

        training.local_rollout_forward_batch_size = 32  # what make_reward_source reads as its batch size
        reward = make_reward_source(script, training, tokenizer, credentialed).to(trainer.accelerator.device)
        settings = RolloutSettings(response_length=training.max_completion_length, temperature=0.0,
                                   stop_ids=stop_token_ids(tokenizer), system_prompt=script.system_prompt,
                                   max_prompt_length=_max_prompt_length(trainer.model, training), forward_batch_size=32)

        def held_out(prefix: str) -> dict:
            from heal.ppo.report import write_eval_answers

            policy = trainer.accelerator.unwrap_model(trainer.model)
            metrics, rows = evaluate(policy, tokenizer, reward, settings, eval_records, trainer.accelerator, prefix)
            if trainer.accelerator.is_main_process:
                write_eval_answers(training.output_dir, prefix, rows)
            return metrics

        if checkpoint is None:
            results.update(held_out("eval_before"))
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    results.update({"train/mean_loss": output.training_loss, "train/global_step": output.global_step,
                    "train/wall_seconds": time.perf_counter() - started})
    if eval_records:
        results.update(held_out("eval"))
        if trainer.accelerator.is_main_process:
            for prefix in ("eval_before", "eval"):
                row = {k: v for k, v in results.items() if k.startswith(prefix + "/")}
                if row:
                    from heal.ppo.report import append_row

                    append_row(training.output_dir, 0 if prefix == "eval_before" else output.global_step, row)
    return results


def _max_prompt_length(model, training) -> int:
    context = getattr(model.config, "max_position_embeddings", None) or 2048
    return max(1, context - training.max_completion_length)


def _finish(folder: Path, script, training, info, prompts_path, train_records, eval_records, results: dict,
            weights: str, checkpoint: str | None, credentialed: bool) -> dict:
    from heal.models.card import ModelCard
    from heal.ppo.report import USAGE
    from heal.ppo.setup import checkpoint_step

    run_folder.plot_loss_curve(folder, f"{folder.name}: GRPO on {script.task()}")
    metrics = {k: results[k] for k in KEY_METRICS if results.get(k) is not None}
    reward = script.reward or f"the reward model {training.reward_model_path}"
    base = info.base or info.name
    card = ModelCard(
        title=folder.name, stage="grpo", base_model=base, base_is_hub=info.source == "hub", weights=weights,
        summary=f"`{base}` optimised with GRPO against {reward} on {script.task()} prompts (HEAL).",
        data={"prompts": prompts_path, "training prompts": len(train_records), "held-out prompts": len(eval_records)},
        training={"trainer": "TRL GRPOTrainer", "reward": reward, "generations per prompt": training.num_generations,
                  "max completion length": training.max_completion_length, "beta (KL)": training.beta,
                  "learning rate": f"{training.learning_rate:g}", "loss": training.loss_type},
        metrics=metrics, credentialed=credentialed, usage=USAGE.format(path=folder),
        files={run_folder.CONFIG_FILE: "every setting", run_folder.METRICS_FILE: "train loss, rewards; held-out score",
               run_folder.CURVE_FILE: "loss curve", run_folder.RUN_FILE: "run identity and status"})
    card.write(folder / run_folder.STAGING)
    files = run_folder.publish(folder)
    return run_folder.update_run(folder, status="complete", weights=weights, files=files, metrics=metrics, reward=reward,
                                data={"prompts": prompts_path, "train_prompts": len(train_records),
                                      "eval_prompts": len(eval_records)},
                                resumed_from_step=checkpoint_step(checkpoint))


def _print_summary(run: dict, folder: Path) -> None:
    m = run.get("metrics", {})
    lines = [f"heal grpo: {m.get('train/global_step', '?')} steps on {run['data']['train_prompts']} prompts against "
             f"{run['reward']}"]
    for key, name in (("score", "held-out reward (greedy)"), ("accuracy", "held-out accuracy")):
        if f"eval/{key}" in m:
            before = f"{m[f'eval_before/{key}']:.3f} → " if f"eval_before/{key}" in m else ""
            lines.append(f"  {name}: {before}{m[f'eval/{key}']:.3f}")
    lines.append(f"  policy ({run['weights']}) → {folder}; model card, metrics.jsonl, loss_curve.png beside it")
    print("\n".join(lines))


if __name__ == "__main__":
    from heal.cli import run as _run

    sys.exit(_run(["grpo", *sys.argv[1:]]))
