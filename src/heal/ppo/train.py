"""`heal ppo`: optimise a policy with PPO against a reward model, an AI judge's score or a verifiable rule.

    heal ppo --model_name models/policy_model/pubmedqa_sft --reward_model_path models/reward_model/pubmedqa \
        --output_dir models/policy_model/pubmedqa_ppo
    heal ppo --model_name models/policy_model/pubmedqa_sft --reward rule:pubmedqa \
        --dataset_path data/processed/pubmedqa.csv --output_dir models/policy_model/pubmedqa_ppo_rule
    heal ppo --config experiments/configs/ppo_tiny_cpu.yaml
    torchrun --nproc_per_node 2 -m heal.cli ppo …        # two CPU processes (gloo): rollouts split, DDP updates

HEAL's own PPO (TRL removed its PPOTrainer in 1.13), following Huang et al. 2024, "The N+ Implementation Details of
RLHF with PPO". `ppo_update` below is one PPO update; its numbered steps match docs/ppo.md. The knobs keep TRL 1.12's
PPOConfig names (heal.ppo.config). The output folder has the layout of every HEAL training run
(heal.models.run_folder): final policy (loads with AutoModelForCausalLM), model card, resolved_config.yaml,
metrics.jsonl, ppo_curves.png, samples.jsonl, checkpoint-N/.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

from heal import runs
from heal.config import make_parser as _make_parser
from heal.contracts import VerbContract
from heal.errors import HealError
from heal.models import run_folder
from heal.ppo.advantages import gae, masked_mean, masked_whiten, token_rewards
from heal.ppo.config import CONFIG_TYPES, HealPPOConfig, PPOModelConfig, PPOScriptConfig
from heal.ppo.kl import kl_penalty
from heal.ppo.losses import entropy_from_logprobs, explained_variance, policy_loss, value_loss
from heal.rl.heldout import summarize_run
from heal.rl.rewards import sequence_inputs

STAGE = "ppo"


CONTRACT = VerbContract(output="folder", inputs=("dataset_path", "eval_dataset_path", "reward_model_path",
                                                 "value_model_path", "resume_from_checkpoint"),
                        models=("model_name_or_path", "sft_model_path"), overwrite_field="overwrite_output_dir",
                        summarize=summarize_run)


def make_parser():
    return _make_parser("heal ppo", __doc__.split("\n")[0], *CONFIG_TYPES)


def main(script: PPOScriptConfig, training: HealPPOConfig, model_args: PPOModelConfig) -> dict:
    """Train, evaluate and save; return the run summary (also in <output_dir>/heal_run.json)."""
    from accelerate import PartialState

    from heal.data.schema import is_credentialed
    from heal.ppo import report, setup
    from heal.rl import monitor
    from heal.rl.prompts import split_prompts
    from heal.rl.rewards import parse_reward, require_reward_model

    state = PartialState()
    folder = Path(training.output_dir)
    # 1. Check the request (the reward is parsed once, here) before anything heavy.
    policy_path = _policy_path(model_args, training)
    setup.check_settings(training, script)
    reward = parse_reward(script.reward, training.reward_model_path)
    if reward.kind == "model":
        require_reward_model(reward.target)  # before any model is loaded
    monitor.check_request(script, sharded=False)
    gold = monitor.parse_gold(script.gold_reward, reward) if script.gold_reward else None
    trackers = report.trackers(training.report_to)
    # 2. Data (prompts), and the batch sizes and prompt lengths it must fit.
    train_records, eval_records, prompts_path = split_prompts(script, reward.reward_model_path, training.seed)
    sizes = setup.batch_sizes(training, state.num_processes, len(train_records))
    if gold and not eval_records:
        raise HealError("--gold_reward: no held-out prompts to monitor; set --eval_dataset_path or a larger "
                        "--eval_split_size")
    setup.check_prompt_lengths(training, model_args, script, [(train_records, prompts_path),
                                                              (eval_records, script.eval_dataset_path or prompts_path)])
    # 3. Claim the folder: new, resumed (metrics.jsonl cut back to the checkpoint) or overwritten.
    fingerprint = {"stage": STAGE, "model": policy_path, "reward": reward.fingerprint(),
                   "dataset_path": runs.resolved_path(prompts_path), **script.constitution_fingerprint()}
    if gold:
        fingerprint["gold_reward"] = gold.fingerprint()
    checkpoint = runs.claim_output_dir(folder, STAGE, fingerprint, training.resume_from_checkpoint,
                                       script.overwrite_output_dir)
    credentialed = is_credentialed(train_records, prompts_path)
    with runs.failure_recorded(folder):
        # 4. Models, optimizer, schedule, KL controller (heal.ppo.setup); the checkpoint's state on resume.
        run = setup.build_run(script, training, model_args, reward, train_records, sizes, credentialed, trackers)
        if checkpoint:
            setup.load_checkpoint(run, checkpoint)
        if gold:
            run.monitor = setup.build_monitor(run, script, gold, eval_records, folder, credentialed)
            run.monitor.resume(runs.checkpoint_step(checkpoint))
        # 5. Resolved config; 6. trackers; 7. the PPO loop with the held-out before/after; 8. final policy.
        runs.write_config(folder, script, training, model_args)
        run.accelerator.init_trackers(training.run_name or "heal-ppo", config=_flat_config(script, training))
        results = train(run, eval_records, folder, script, resumed=checkpoint is not None)
        weights = _save_final(run, model_args, folder)
        kept = run.monitor.finish(folder / run_folder.STAGING, run.step) if run.monitor else {}
        ranks = _rank_stats(run)
        # 9. Card, publish.
        if state.is_main_process:
            summary = _finish(run, folder, script, model_args, prompts_path, train_records, eval_records, results,
                              weights, ranks, checkpoint, credentialed, kept)
            _print_summary(summary, folder)
    summary = runs.summary(folder)
    if trackers:
        run.accelerator.end_training()  # also ends the process group: nothing distributed may follow
    _end_process_group(run.accelerator)
    return summary


def _end_process_group(acc) -> None:
    """Under torchrun: wait until every rank is done (rank 0 publishes the run folder after the others have nothing
    left to do), then end the process group. A rank that exits with the group still up can abort in gloo's teardown
    ("terminate called without an active exception"), and torchrun then kills rank 0 in the middle of publishing."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        acc.wait_for_everyone()
        dist.destroy_process_group()


# --- the PPO loop --------------------------------------------------------------------------------------------------

def train(run, eval_records: list[dict], folder: Path, script, resumed: bool) -> dict:
    """Evaluate, run the remaining PPO updates (logging and checkpointing), evaluate again."""
    from tqdm.auto import tqdm

    from heal.ppo import report
    from heal.ppo.setup import save_checkpoint

    acc, args = run.accelerator, run.args
    results = _earlier_eval(folder) if resumed else {}
    if eval_records and script.eval_before_training and not resumed:
        results.update(_evaluate(run, eval_records, folder, "eval_before"))
        _log(run, folder, results)
    if run.monitor and not resumed:
        _log(run, folder, run.monitor.point(0, run.unwrapped.policy, run.reference, results, "eval_before"))
    started = time.perf_counter()
    every = max(1, run.sizes.updates // args.num_sample_generations) if args.num_sample_generations else 0
    with tqdm(total=run.sizes.updates, initial=run.step, desc="PPO updates", unit="update",
              disable=args.disable_tqdm or not acc.is_main_process) as bar:
        while run.step < run.sizes.updates:
            metrics, rollout = ppo_update(run)
            run.step += 1
            if run.step % max(1, int(args.logging_steps)) == 0 or run.step == run.sizes.updates:
                _log(run, folder, metrics)
            if every and (run.step % every == 0 or run.step == 1) and acc.is_main_process:
                report.append_samples(folder, run.step, rollout)
            if run.monitor and run.monitor.due(run.step, run.sizes.updates):  # before the checkpoint: logged once
                run.model.eval()
                _log(run, folder, run.monitor.point(run.step, run.unwrapped.policy, run.reference))
            if args.save_strategy != "no" and run.step % max(1, int(args.save_steps)) == 0:
                save_checkpoint(run, folder)
            bar.update(1)
            bar.set_postfix(score=f"{metrics['objective/scores']:.3f}", kl=f"{metrics['objective/kl']:.3f}")
    results.update({"train/updates": run.step, "train/episodes": run.step * run.sizes.batch,
                    "train/wall_seconds": time.perf_counter() - started})
    if eval_records:
        after = _evaluate(run, eval_records, folder, "eval")
        _log(run, folder, after)
        results.update(after)
        if run.monitor:
            _log(run, folder, run.monitor.point(run.step, run.unwrapped.policy, run.reference, after, "eval"))
    return results


def ppo_update(run) -> tuple[dict, object]:
    """One PPO update (Huang et al. 2024). The numbered steps are those of docs/ppo.md."""
    from heal.ppo.data import batch_indices
    from heal.ppo.rollout import make_rollout

    args, sizes, acc = run.args, run.sizes, run.accelerator
    started = time.perf_counter()
    # 1. This process's prompts for this update: a seeded order, so a resumed run reads the same prompts.
    picks = batch_indices(len(run.prompts), run.step, sizes.batch, acc.process_index, sizes.local_batch, args.seed)
    # 2–5. Roll out (heal.ppo.rollout): generate T tokens, truncate after the stop token, score each response
    #      (reward model / judge / rule, missing-EOS penalty), then log π_old, log π_ref and V without gradients.
    run.model.eval()
    rollout = make_rollout(run.unwrapped, run.reference, run.reward, run.tokenizer,
                           [run.prompts[i] for i in picks], run.settings)
    mask = rollout.response_mask.float()  # (B, T)
    first = None
    if not run.settings.policy_pass:
        # 5'. One optimizer step per epoch over the whole batch (num_mini_batches 1, no accumulation): the first PPO
        #     step's forward pass runs at the rollout's weights, so its outputs, detached, are log π_old and V.
        run.model.train()
        first = _forward(run, rollout, torch.arange(sizes.local_batch, device=mask.device))
        rollout.logprobs, rollout.values = first[0].detach() * mask, first[1].detach() * mask
    # 6. Per-token rewards: −β·KL(π‖π_ref) on every real token, plus the score at the last real token;
    #    optionally whitened (scale only).
    kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, args.kl_estimator) * mask  # (B, T)
    rewards = token_rewards(rollout.scores, kl, mask, run.kl_ctl.value)
    if args.whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    # 7. Advantages and returns by GAE (γ, λ), then advantages whitened over the batch's real tokens.
    advantages, returns = gae(rewards, rollout.values, mask, args.gamma, args.lam)
    advantages = masked_whiten(advantages, mask)
    rollout_seconds = time.perf_counter() - started
    # 8. PPO epochs × minibatches × micro-batches: clipped policy loss + vf_coef · clipped value loss.
    run.model.train()  # dropout is 0 everywhere: train mode only lets gradient checkpointing work
    stats = optimise(run, rollout, advantages, returns, first)
    # 9. Metrics (averaged over processes), then adapt β to the measured KL (a fixed β stays).
    metrics = _rollout_metrics(run, rollout, kl, returns, mask)
    run.kl_ctl.update(metrics["objective/kl"], sizes.batch)
    run.rollouts_this_run += len(picks)
    run.updates_this_run += 1
    metrics.update(stats)
    metrics.update({"train/learning_rate": run.scheduler.get_last_lr()[0],
                    "train/episode": (run.step + 1) * sizes.batch, "time/rollout_seconds": rollout_seconds,
                    "time/update_seconds": time.perf_counter() - started - rollout_seconds})
    return metrics, rollout


def optimise(run, rollout, advantages: torch.Tensor, returns: torch.Tensor, first=None) -> dict:
    """num_ppo_epochs passes over the rollouts in a fresh random order; one optimizer step per minibatch, whose
    micro-batches accumulate gradients (synchronised across processes at the optimizer step). `first`: the forward
    pass of the first epoch's one micro-batch (the whole batch), already made in step 5'."""
    args, sizes, acc = run.args, run.sizes, run.accelerator
    totals: dict[str, list[float]] = defaultdict(list)
    for epoch in range(args.num_ppo_epochs):
        order = torch.randperm(sizes.local_batch, device=rollout.response.device)
        if epoch == 0 and first is not None:
            order = torch.arange(sizes.local_batch, device=rollout.response.device)  # the rows `first` holds
        for mini_start in range(0, sizes.local_batch, sizes.local_mini_batch):
            minibatch = order[mini_start:mini_start + sizes.local_mini_batch]
            for micro_start in range(0, sizes.local_mini_batch, sizes.micro_batch):
                idx = minibatch[micro_start:micro_start + sizes.micro_batch]
                with acc.accumulate(run.model):
                    outputs = first if epoch == 0 and first is not None else _forward(run, rollout, idx)
                    step_stats = _micro_step(run, outputs, rollout, idx, advantages, returns)
                for key, value in step_stats.items():
                    totals[key].append(value)
    means = {key: torch.tensor(values).mean() for key, values in totals.items()}
    ratios = torch.tensor(totals.pop("val/ratio"))
    means["val/ratio_var"] = ratios.var(unbiased=False) if len(ratios) > 1 else torch.tensor(0.0)
    return {key: acc.reduce(value.to(acc.device), "mean").item() for key, value in means.items()}


def _forward(run, rollout, idx) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log π of the sampled tokens, V, log π of every token) of rollouts `idx` under the current weights, with
    gradients: (B, T), (B, T), (B, T, V). Logits are divided by the sampling temperature, as in the rollout. The full
    log-softmax is returned because backward keeps it anyway, and the entropy metric reuses it."""
    input_ids, attention_mask, position_ids = sequence_inputs(rollout.query[idx], rollout.query_mask[idx],
                                                              rollout.response[idx], rollout.response_mask[idx])
    logits, values = run.model(input_ids, attention_mask, position_ids, rollout.response.shape[1])
    all_logprobs = torch.log_softmax(logits.float() / (run.args.temperature + 1e-7), dim=-1)
    return all_logprobs.gather(-1, rollout.response[idx].unsqueeze(-1)).squeeze(-1), values, all_logprobs


def _micro_step(run, outputs, rollout, idx, advantages, returns) -> dict:
    """Both clipped losses, backward; the optimizer steps when the minibatch's last micro-batch is done."""
    args, acc = run.args, run.accelerator
    logprobs, values, all_logprobs = outputs
    mask = rollout.response_mask[idx].float()
    pg_loss, pg = policy_loss(logprobs, rollout.logprobs[idx], advantages[idx], mask, args.cliprange)
    vf_loss, vf_clipfrac = value_loss(values, rollout.values[idx], returns[idx], mask, args.cliprange_value)
    loss = pg_loss + args.vf_coef * vf_loss
    acc.backward(loss)
    if acc.sync_gradients and args.max_grad_norm:
        acc.clip_grad_norm_(run.model.parameters(), args.max_grad_norm)
    run.optimizer.step()
    if acc.sync_gradients:
        run.scheduler.step()
    run.optimizer.zero_grad()
    with torch.no_grad():
        entropy = masked_mean(entropy_from_logprobs(all_logprobs.detach()), mask)
    return {"loss/policy": pg_loss.item(), "loss/value": vf_loss.item(), "policy/approxkl": pg["approxkl"].item(),
            "policy/clipfrac": pg["clipfrac"].item(), "policy/entropy": entropy.item(), "val/clipfrac":
            vf_clipfrac.item(), "val/ratio": pg["ratio"].item()}


def _rollout_metrics(run, rollout, kl: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> dict:
    acc, beta = run.accelerator, run.kl_ctl.value
    non_score = -beta * kl.sum(1)  # (B,)
    local = {"objective/kl": kl.sum(1).mean(), "objective/entropy": (-rollout.logprobs).sum(1).mean(),
             "objective/non_score_reward": non_score.mean(),
             "objective/rlhf_reward": (rollout.scores + non_score).mean(),
             "objective/scores": rollout.scores.mean(),
             "val/explained_var": explained_variance(rollout.values, returns, mask),
             "response/eos_rate": rollout.has_stop.float().mean(), "response/length": mask.sum(1).mean()}
    metrics = {key: acc.reduce(value.detach().float().to(acc.device), "mean").item() for key, value in local.items()}
    metrics["val/num_eos_tokens"] = int(acc.reduce(rollout.has_stop.sum().to(acc.device), "sum").item())
    metrics["objective/kl_coef"] = beta
    return metrics


def _evaluate(run, records: list[dict], folder: Path, prefix: str) -> dict:
    from heal.rl.heldout import evaluate, write_eval_answers

    run.model.eval()
    metrics, rows = {}, []
    for temperature in (0.0, run.settings.temperature):  # greedy, then sampled as in training
        values, answers = evaluate(run.unwrapped.policy, run.tokenizer, run.reward, run.settings, records,
                                   run.accelerator, prefix, temperature, run.args.seed,
                                   gold=run.monitor.gold if run.monitor else None)
        metrics.update(values)
        rows += answers
    if run.accelerator.is_main_process:
        write_eval_answers(folder, prefix, rows)
    return metrics


def _log(run, folder: Path, metrics: dict) -> None:
    if run.accelerator.is_main_process:
        run_folder.append_row(folder, run.step, metrics)
    run.accelerator.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=run.step)


def _earlier_eval(folder: Path) -> dict:
    """On resume: the before-training evaluation the first attempt logged at step 0."""
    rows = [r for r in run_folder.read_metrics(folder) if r.get("step") == 0]
    return {k: v for r in rows for k, v in r.items() if k.startswith("eval_before/")}


# --- setting up and finishing --------------------------------------------------------------------------------------

def _policy_path(model_args: PPOModelConfig, training: HealPPOConfig) -> str:
    if training.sft_model_path:
        model_args.model_name_or_path = training.sft_model_path
    name = runs.require_policy(model_args.model_name_or_path, "PPO")
    if model_args.load_in_4bit or model_args.load_in_8bit:
        raise HealError("--load_in_4bit/--load_in_8bit: quantized PPO is not supported; use --use_peft (LoRA)")
    return name


def _flat_config(script, training) -> dict:
    keys = ("learning_rate", "kl_coef", "kl_estimator", "kl_target", "response_length", "temperature",
            "num_ppo_epochs", "num_mini_batches", "per_device_train_batch_size", "gradient_accumulation_steps",
            "cliprange", "cliprange_value", "vf_coef", "gamma", "lam", "whiten_rewards", "seed")
    config = {k: getattr(training, k) for k in keys}
    config["reward"] = script.reward or "reward model"
    return {k: v for k, v in config.items() if v is not None}


def _save_final(run, model_args, folder: Path) -> str:
    """The policy (LoRA merged) to the staging folder, with stop ids in its generation config."""
    from heal.ppo.models import merged_policy

    acc = run.accelerator
    acc.wait_for_everyone()
    weights = (f"LoRA (r={model_args.lora_r}, alpha={model_args.lora_alpha}) merged into the base weights"
               if model_args.use_peft else "full model (all weights trained)")
    if acc.is_main_process:
        staging = run_folder.staging_dir(folder)
        policy = merged_policy(run.unwrapped.policy)
        policy.generation_config.eos_token_id = run.settings.stop_ids
        policy.save_pretrained(staging)
        run.tokenizer.save_pretrained(staging)
    acc.wait_for_everyone()
    return weights


def _rank_stats(run) -> list[dict]:
    """Every process's own counts (gathered: each process must call this)."""
    from accelerate.utils import gather_object

    stats = {"rank": run.accelerator.process_index, "rollouts": run.rollouts_this_run,
             "updates": run.updates_this_run, "trainable_checksum": runs.trainable_checksum(run.unwrapped)}
    return gather_object([stats])


def _finish(run, folder: Path, script, model_args, prompts_path, train_records, eval_records, results: dict,
            weights: str, ranks: list[dict], checkpoint: str | None, credentialed: bool, kept: dict) -> dict:
    from heal.ppo import report
    from heal.rl import monitor

    report.plot_curves(folder, f"{folder.name}: PPO on {script.task()}")
    metrics = {**report.key_metrics(results, folder), **monitor.key_metrics(folder, kept)}
    reward_desc = run.reward_spec.describe()
    card = report.model_card(folder, script, run.args, model_args, run.info, reward_desc, run.value_init,
                             prompts_path, len(train_records), len(eval_records), metrics, weights, credentialed)
    if run.monitor:
        gold = run.monitor.gold_spec
        monitor.plot_overoptimisation(folder, f"{folder.name}: PPO on {script.task()}", run.reward_spec.fingerprint(),
                                      gold.fingerprint(), kept)
        card.training.update(monitor.card_lines(gold, kept, run.monitor.every))
        card.files[monitor.FIGURE_FILE] = "held-out proxy and gold reward against √KL, by update"
    return runs.publish(
        folder, card, weights=weights, metrics=metrics, reward=reward_desc,
        value_init=run.value_init, resumed_from_step=runs.checkpoint_step(checkpoint), monitor=kept,
        distributed={"world_size": run.sizes.world_size, "ranks": ranks},
        batch={"rollouts_per_update": run.sizes.batch, "rollouts_per_process": run.sizes.local_batch,
               "updates": run.sizes.updates},
        data={"prompts": prompts_path, "train_prompts": len(train_records), "eval_prompts": len(eval_records)})


def _print_summary(run: dict, folder: Path) -> None:
    m = run.get("metrics", {})
    lines = [f"heal ppo: {m.get('train/updates', '?')} updates × {run['batch']['rollouts_per_update']} rollouts "
             f"against {run['reward']}"]
    names = (("score", "held-out reward (greedy)"), ("accuracy", "held-out accuracy (greedy)"),
             ("sampled_score", "held-out reward (sampled)"), ("sampled_accuracy", "held-out accuracy (sampled)"))
    for key, name in names:
        if f"eval/{key}" in m:
            before = f"{m[f'eval_before/{key}']:.3f} → " if f"eval_before/{key}" in m else ""
            lines.append(f"  {name}: {before}{m[f'eval/{key}']:.3f}")
    if "objective/kl_last" in m:
        lines.append(f"  training reward {m['objective/scores_first']:.3f} → {m['objective/scores_last']:.3f}, "
                     f"KL to the reference {m['objective/kl_last']:.3f}")
    lines.append(f"  policy ({run['weights']}) → {folder}; model card, metrics.jsonl, ppo_curves.png beside it")
    print("\n".join(lines))


if __name__ == "__main__":
    from heal.cli import run as _run

    sys.exit(_run(["ppo", *sys.argv[1:]]))
