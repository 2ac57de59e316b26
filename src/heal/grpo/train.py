"""`heal grpo`: group relative policy optimisation against a reward model, an AI judge or a rule (TRL GRPOTrainer).

    heal grpo --model_name models/policy_model/pubmedqa_sft --reward rule:pubmedqa \
        --dataset_path data/processed/pubmedqa.csv --output_dir models/policy_model/pubmedqa_grpo
    heal grpo --model_name models/policy_model/pubmedqa_sft --reward_model_path models/reward_model/pubmedqa …
    heal grpo --config experiments/configs/grpo_tiny_cpu.yaml

The same data contract and reward sources as `heal ppo` (heal.rl: prompts, rewards; heal.grpo.rewards): prompt records
(default: the reward model's prompts), a reward model, `--reward judge:<spec>` or `--reward rule:pubmedqa`. GRPO samples
`num_generations` completions per prompt and uses the group's mean reward as the baseline instead of a value model.
Before and after training the held-out prompts are answered greedily and scored exactly as `heal ppo` scores them
(heal.rl.heldout), so the two are comparable. Same output folder layout as every HEAL stage.
"""

from __future__ import annotations

import sys
from pathlib import Path

from heal import runs
from heal.config import make_parser as _make_parser
from heal.contracts import VerbContract
from heal.errors import HealError
from heal.grpo.config import CONFIG_TYPES, LEARNING_RATES, GRPOModelConfig, GRPOScriptConfig, HealGRPOConfig
from heal.models import run_folder
from heal.rl.heldout import summarize_run

STAGE = "grpo"
KEY_METRICS = ("eval_before/score", "eval/score", "eval_before/accuracy", "eval/accuracy", "train/mean_loss",
               "train/global_step", "train/wall_seconds")


CONTRACT = VerbContract(output="folder", inputs=("dataset_path", "eval_dataset_path", "reward_model_path",
                                                 "value_model_path", "resume_from_checkpoint"),
                        models=("model_name_or_path",), overwrite_field="overwrite_output_dir",
                        summarize=summarize_run)


def make_parser():
    return _make_parser("heal grpo", __doc__.split("\n")[0], *CONFIG_TYPES)


def main(script: GRPOScriptConfig, training: HealGRPOConfig, model_args: GRPOModelConfig) -> dict:
    from accelerate import PartialState

    from heal.data.schema import is_credentialed
    from heal.models.sampling import ids_only
    from heal.rl import monitor
    from heal.rl.prompts import check_prompt_lengths, split_prompts
    from heal.rl.rewards import parse_reward, require_reward_model

    folder = Path(training.output_dir)
    # 1. Check the request (the reward is parsed once, here) before anything heavy.
    policy = runs.require_policy(model_args.model_name_or_path, "GRPO")
    check_sampling(training)
    if script.value_model_path:
        raise HealError("--value_model_path: GRPO has no value model (the group's mean reward is the baseline)")
    reward = parse_reward(script.reward, training.reward_model_path)
    if reward.kind == "model":
        require_reward_model(reward.target)  # before any model is loaded
    monitor.check_request(script, runs.sharded(training))
    gold = monitor.parse_gold(script.gold_reward, reward) if script.gold_reward else None
    # 2. Data (prompts).
    train_records, eval_records, prompts_path = split_prompts(script, reward.reward_model_path, training.seed)
    check_prompt_lengths(model_args, script, [(train_records, prompts_path),
                                              (eval_records, script.eval_dataset_path or prompts_path)],
                         training.max_prompt_length, training.max_completion_length, "--max_completion_length")
    credentialed = is_credentialed(train_records, prompts_path)
    if gold and not eval_records:
        raise HealError("--gold_reward: no held-out prompts to monitor; set --eval_dataset_path or a larger "
                        "--eval_split_size")
    # 3. Claim the folder: new, resumed (metrics.jsonl cut back to the checkpoint) or overwritten.
    fingerprint = {"stage": STAGE, "model": policy, "reward": reward.fingerprint(),
                   "dataset_path": runs.resolved_path(prompts_path), **script.constitution_fingerprint()}
    if gold:
        fingerprint["gold_reward"] = gold.fingerprint()
    checkpoint = runs.claim_output_dir(folder, STAGE, fingerprint, training.resume_from_checkpoint,
                                       script.overwrite_output_dir)
    with runs.failure_recorded(folder):
        # 4. Model, and the defaults that depend on it.
        model, tokenizer, info = runs.load_policy(model_args, training, policy)
        # A generation config of special-token ids only: TRL fills what its own GenerationConfig leaves unset from
        # the model's, and GRPO's log-probabilities are those of plain temperature sampling (heal.models.sampling).
        model.generation_config = ids_only(model.generation_config)
        if training.learning_rate is None:
            training.learning_rate = LEARNING_RATES.pick(runs.built_from_heal_tiny(policy), model_args.use_peft)
        # 5. Resolved config; 6. trainer; 7. train, with the held-out before/after; 8. final model; 9. card.
        runs.write_config(folder, script, training, model_args)
        trainer = _build_trainer(model, tokenizer, training, model_args, script, reward, train_records, credentialed)
        results, gold_monitor = _train_and_evaluate(trainer, script, (reward, gold), training, eval_records,
                                                    credentialed, checkpoint)
        weights = runs.save_final(trainer, tokenizer, model_args, folder)
        kept = gold_monitor.finish(folder / run_folder.STAGING, results["train/global_step"]) if gold_monitor else {}
        if PartialState().is_main_process:
            run = _finish(folder, script, training, info, (reward, gold_monitor), prompts_path, train_records,
                          eval_records, results, weights, checkpoint, credentialed, kept)
            _print_summary(run, folder)
    return runs.summary(folder)


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


def _dataset(tokenizer, records: list[dict], system: str | None, max_prompt_length: int | None = None):
    """TRL prompt records: the formatted prompt (its last --max_prompt_length tokens when set), plus the raw prompt
    and the columns judges and rules read."""
    from datasets import Dataset

    from heal.models.prompting import format_prompt

    def text(value) -> str:
        return "" if value is None else str(value)

    def prompt(record) -> str:
        formatted = format_prompt(tokenizer, str(record["prompt"]), system)
        if max_prompt_length:
            ids = tokenizer(formatted, add_special_tokens=False)["input_ids"]
            if len(ids) > max_prompt_length:
                return tokenizer.decode(ids[-max_prompt_length:])
        return formatted

    return Dataset.from_list([{"prompt": prompt(r),
                               "raw_prompt": str(r["prompt"]), "label": text(r.get("label")),
                               "reference": text(r.get("reference")), "source": text(r.get("source"))}
                              for r in records])


def _build_trainer(model, tokenizer, training, model_args, script, reward, records: list[dict], credentialed: bool):
    from trl import GRPOTrainer, get_peft_config

    from heal.grpo.rewards import make_reward_function

    class HealGRPOTrainer(runs.NoTrlModelCard, GRPOTrainer):
        pass

    return HealGRPOTrainer(model=model, reward_funcs=make_reward_function(reward, script, credentialed),
                           args=training,
                           train_dataset=_dataset(tokenizer, records, script.system_prompt, training.max_prompt_length),
                           processing_class=tokenizer, peft_config=get_peft_config(model_args),
                           callbacks=[runs.metrics_callback(training.output_dir)])


def _train_and_evaluate(trainer, script, rewards, training, eval_records: list[dict], credentialed: bool,
                        checkpoint: str | None) -> tuple[dict, object]:
    """Held-out greedy answers scored like `heal ppo` scores them, before and after `trainer.train()`; with a gold
    reward (`rewards` = (proxy spec, gold spec or None)) the over-optimisation monitor's points too (heal.rl.monitor).
    Returns (results, the GoldMonitor or None)."""
    import time

    from heal.rl.heldout import evaluate, write_eval_answers

    tokenizer, acc, (proxy_spec, gold_spec) = trainer.processing_class, trainer.accelerator, rewards
    results: dict = {}
    gold_monitor = reference = None
    if eval_records:
        reward, settings = _held_out_scoring(trainer, script, proxy_spec, training, credentialed)
        if gold_spec:
            gold_monitor, reference = _monitor(trainer, script, training, (reward, gold_spec), settings,
                                               eval_records, credentialed, checkpoint)

        def held_out(prefix: str) -> dict:
            policy = acc.unwrap_model(trainer.model)
            metrics, rows = evaluate(policy, tokenizer, reward, settings, eval_records, acc, prefix,
                                     gold=gold_monitor.gold if gold_monitor else None)
            if acc.is_main_process:
                write_eval_answers(training.output_dir, prefix, rows)
            if gold_monitor and (prefix == "eval" or checkpoint is None):
                step = 0 if prefix == "eval_before" else trainer.state.global_step
                row = gold_monitor.point(step, policy, reference, metrics, prefix)
                if acc.is_main_process:
                    run_folder.append_row(training.output_dir, step, row)
            return metrics

        if checkpoint is None:
            results.update(held_out("eval_before"))
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    results.update({"train/mean_loss": output.training_loss, "train/global_step": output.global_step,
                    "train/wall_seconds": time.perf_counter() - started})
    if eval_records:
        results.update(held_out("eval"))
        if acc.is_main_process:
            for prefix in ("eval_before", "eval"):
                row = {k: v for k, v in results.items() if k.startswith(prefix + "/")}
                if row:
                    step = 0 if prefix == "eval_before" else output.global_step
                    run_folder.append_row(training.output_dir, step, row)
    return results, gold_monitor


def _held_out_scoring(trainer, script, proxy_spec, training, credentialed: bool):
    """(the proxy reward source, greedy RolloutSettings) of the held-out evaluation."""
    from heal.models.prompting import stop_token_ids
    from heal.rl.rewards import make_reward_source
    from heal.rl.sampling import RolloutSettings

    tokenizer = trainer.processing_class
    reward = make_reward_source(proxy_spec, script, tokenizer, credentialed, 32).to(trainer.accelerator.device)
    settings = RolloutSettings(response_length=training.max_completion_length, temperature=0.0,
                               stop_ids=stop_token_ids(tokenizer), system_prompt=script.system_prompt,
                               max_prompt_length=_max_prompt_length(trainer.model, training), forward_batch_size=32)
    return reward, settings


def _monitor(trainer, script, training, sources, settings, eval_records: list[dict], credentialed: bool,
             checkpoint: str | None):
    """(GoldMonitor, its KL reference) with its callback added to `trainer`. The reference: TRL's when it loaded one
    (beta > 0), the policy with its adapters off (LoRA), else a frozen copy of the starting policy."""
    from heal.rl import monitor
    from heal.rl.rewards import make_reward_source

    proxy, gold_spec = sources
    acc = trainer.accelerator
    gold = make_reward_source(gold_spec, script, trainer.processing_class, credentialed, 32).to(acc.device)
    # every: set from --eval_steps when training begins (the Trainer knows its number of steps then)
    gold_monitor = monitor.GoldMonitor(proxy, gold, gold_spec, settings, eval_records, trainer.processing_class, acc,
                                       training.output_dir, 0, script.keep_best, training.temperature, training.seed)
    gold_monitor.resume(runs.checkpoint_step(checkpoint))
    policy = acc.unwrap_model(trainer.model)
    reference = getattr(trainer, "ref_model", None)
    # a PeftModel: the reference is the policy with its adapters off (transformers' own models also have a
    # disable_adapter method, which does nothing without PEFT adapters: hence the type check)
    if reference is None and not _is_peft(policy):
        reference = _frozen_copy(policy)
    trainer.add_callback(monitor.trainer_callback(gold_monitor, reference, training.eval_steps))
    return gold_monitor, reference


def _frozen_copy(model):
    """A new instance with the model's weights. Not copy.deepcopy of the model GRPOTrainer holds: measured, the deep
    copy's log-probabilities stayed equal to the trained policy's (KL 0 after updates that changed the weights)."""
    reference = type(model)._from_config(model.config, dtype=model.dtype)
    reference.load_state_dict(model.state_dict())
    return reference.to(model.device).eval().requires_grad_(False)


def _is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _max_prompt_length(model, training) -> int:
    from heal.rl.prompts import prompt_room

    return prompt_room(model.config, training.max_prompt_length, training.max_completion_length,
                       "--max_completion_length")


def _finish(folder: Path, script, training, info, rewards, prompts_path, train_records, eval_records,
            results: dict, weights: str, checkpoint: str | None, credentialed: bool, kept: dict) -> dict:
    from heal.models.card import CAUSAL_LM_USAGE, ModelCard
    from heal.rl import monitor

    reward_spec, gold_monitor = rewards
    run_folder.plot_loss_curve(folder, f"{folder.name}: GRPO on {script.task()}")
    metrics = {k: results[k] for k in KEY_METRICS if results.get(k) is not None}
    metrics.update(monitor.key_metrics(folder, kept))
    reward = reward_spec.flag or f"the reward model {reward_spec.target}"
    base = info.base or info.name
    card = ModelCard(
        title=folder.name, stage="grpo", base_model=base, base_is_hub=info.source == "hub", weights=weights,
        summary=f"`{base}` optimised with GRPO against {reward} on {script.task()} prompts (HEAL).",
        data={"prompts": prompts_path, "training prompts": len(train_records), "held-out prompts": len(eval_records)},
        training={"trainer": "TRL GRPOTrainer", "reward": reward, "generations per prompt": training.num_generations,
                  "max completion length": training.max_completion_length, "beta (KL)": training.beta,
                  "learning rate": f"{training.learning_rate:g}", "loss": training.loss_type},
        metrics=metrics, credentialed=credentialed, usage=CAUSAL_LM_USAGE.format(path=folder),
        files={run_folder.CONFIG_FILE: "every setting", run_folder.METRICS_FILE: "train loss, rewards; held-out score",
               run_folder.CURVE_FILE: "loss curve", run_folder.RUN_FILE: "run identity and status"})
    if gold_monitor:
        gold = gold_monitor.gold_spec
        monitor.plot_overoptimisation(folder, f"{folder.name}: GRPO on {script.task()}", reward_spec.fingerprint(),
                                      gold.fingerprint(), kept)
        card.training.update(monitor.card_lines(gold, kept, gold_monitor.every))
        card.files[monitor.FIGURE_FILE] = "held-out proxy and gold reward against √KL, by step"
    return runs.publish(folder, card, weights=weights, metrics=metrics, reward=reward, monitor=kept,
                        data={"prompts": prompts_path, "train_prompts": len(train_records),
                              "eval_prompts": len(eval_records)},
                        resumed_from_step=runs.checkpoint_step(checkpoint))


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
