"""What a PPO run reports: metrics.jsonl rows (and accelerate trackers), PNG curves, samples, the model card.

Metric keys (one row per logged update; `step` = PPO updates done):

    objective/scores            mean score of the sampled responses (after the missing-EOS penalty)
    objective/kl                mean over responses of Σ_t kl_t (the chosen estimator, k1 or k3)
    objective/non_score_reward  mean of Σ_t −β·kl_t
    objective/rlhf_reward       objective/scores + objective/non_score_reward: what PPO maximises
    objective/entropy           mean over responses of Σ_t −log π(a_t) (TRL's definition: a sampled estimate)
    objective/kl_coef           β used for this update
    policy/approxkl             ½·mean (log π − log π_old)² over the PPO minibatches (TRL: policy/approxkl_avg)
    policy/clipfrac             share of tokens whose ratio was clipped (TRL: policy/clipfrac_avg)
    policy/entropy              mean per-token entropy of π during the update
    loss/policy, loss/value     the clipped losses, averaged over minibatches (TRL: loss/*_avg)
    val/clipfrac                share of tokens whose value was clipped
    val/ratio, val/ratio_var    mean and variance of π/π_old over minibatches
    val/explained_var           1 − Var(R − V)/Var(R) of the rollout's values against the GAE returns
    val/num_eos_tokens          responses (all processes) that ended with a stop token
    response/eos_rate           the same as a share; response/length: mean tokens per response
    train/learning_rate, train/episode (rollouts so far), time/rollout_seconds, time/update_seconds
    eval_before/*, eval/*       held-out answers before and after training, greedy and sampled (heal.ppo.evaluate)
    monitor/*                   with --gold_reward: the over-optimisation monitor's points (heal.rl.monitor):
                                step, proxy, gold, kl, accuracy; overoptimisation.png
"""

from __future__ import annotations

import json
from pathlib import Path

from heal.errors import HealError
from heal.models import run_folder
from heal.models.card import CAUSAL_LM_USAGE, ModelCard
from heal.rl.heldout import EVAL_ANSWERS_FILE

CURVES_FILE = "ppo_curves.png"
SAMPLES_FILE = "samples.jsonl"
TRACKERS = ("tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive", "swanlab", "trackio")



def trackers(report_to) -> list[str]:
    """--report_to as accelerate tracker names; a tracker whose package is missing is a one-line error."""
    import importlib.util

    names = [report_to] if isinstance(report_to, str) else list(report_to or [])
    names = [n for n in names if n and n != "none"]
    packages = {"tensorboard": ("tensorboard", "tensorboardX"), "comet_ml": ("comet_ml",)}
    for name in names:
        if name not in TRACKERS:
            raise HealError(f"--report_to {name}: unknown; use one of {', '.join(TRACKERS)} or none")
        if not any(importlib.util.find_spec(p) for p in packages.get(name, (name,))):
            raise HealError(f"--report_to {name}: the {name} package is not installed; pip install {name} (or "
                            "--report_to none: metrics.jsonl is always written)")
    return names


def append_samples(folder: str | Path, step: int, rollout, n: int = 4) -> None:
    """samples.jsonl: a few of this process's rollouts with their score (after any missing-EOS penalty)."""
    rows = zip(rollout.records, rollout.texts, rollout.scores.tolist(), rollout.has_stop.tolist())
    with open(Path(folder) / SAMPLES_FILE, "a", encoding="utf-8") as f:
        for record, text, score, stopped in list(rows)[:n]:
            f.write(json.dumps({"step": step, "prompt": str(record["prompt"]), "response": text, "score": score,
                                "stopped": bool(stopped)}, ensure_ascii=False) + "\n")


CURVES = (("reward", ("objective/scores", "objective/rlhf_reward")), ("KL to the reference", ("objective/kl",)),
          ("losses", ("loss/policy", "loss/value")), ("responses", ("response/eos_rate", "val/explained_var")))


def plot_curves(folder: str | Path, title: str) -> Path | None:
    """ppo_curves.png: reward, KL, losses and response statistics against PPO updates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in run_folder.read_metrics(folder) if "objective/scores" in r]
    if not rows:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(9.6, 6.4), dpi=100)
    for ax, (name, keys) in zip(axes.flat, CURVES):
        for key in keys:
            points = [(r["step"], r[key]) for r in rows if key in r]
            if points:
                ax.plot(*zip(*points), label=key)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("PPO update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return run_folder.save_figure(fig, Path(folder) / CURVES_FILE)


def key_metrics(results: dict, folder: str | Path) -> dict:
    """Before/after on held-out prompts, the first and last logged training reward and KL, counts and time."""
    keys = ("eval_before/score", "eval/score", "eval_before/accuracy", "eval/accuracy", "eval_before/sampled_score",
            "eval/sampled_score", "eval_before/sampled_accuracy", "eval/sampled_accuracy", "eval_before/eos_rate",
            "eval/eos_rate", "eval/samples", "train/updates", "train/episodes", "train/wall_seconds")
    metrics = {k: results[k] for k in keys if results.get(k) is not None}
    rows = [r for r in run_folder.read_metrics(folder) if "objective/scores" in r]
    if rows:
        window = max(1, round(len(rows) / 4))  # averages over the first and last quarter of the updates: less noisy
        for name, part in (("first", rows[:window]), ("last", rows[-window:])):
            for key in ("objective/scores", "objective/kl", "objective/rlhf_reward"):
                values = [r[key] for r in part if key in r]
                if values:
                    metrics[f"{key}_{name}"] = sum(values) / len(values)
    return metrics


def model_card(folder: Path, script, training, model_args, info, reward_desc: str, value_init: str, prompts_path: str,
               n_train: int, n_eval: int, metrics: dict, weights: str, credentialed: bool) -> ModelCard:
    base = info.base or info.name
    data = {"task (--dataset)": script.task(), "prompts": prompts_path, "training prompts": n_train,
            "held-out prompts": n_eval, "format": "prompts by heal.models.prompting"}
    kl = (f"adaptive (target {training.kl_target:g}, horizon {training.kl_horizon:g}), β₀ = {training.kl_coef:g}"
          if training.kl_target is not None else f"fixed β = {training.kl_coef:g}")
    run = {"algorithm": "PPO (HEAL's implementation of Huang et al. 2024's details)", "reward": reward_desc,
           "value model from": value_init, "KL penalty": f"{training.kl_estimator}, {kl}",
           "response length": f"{training.response_length} tokens, temperature {training.temperature:g}",
           "missing-EOS penalty": training.missing_eos_penalty, "learning rate": f"{training.learning_rate:g}",
           "PPO": f"{training.num_ppo_epochs} epochs × {training.num_mini_batches} minibatches, cliprange "
                  f"{training.cliprange:g}, cliprange_value {training.cliprange_value:g}, vf_coef "
                  f"{training.vf_coef:g}, γ {training.gamma:g}, λ {training.lam:g}",
           "seed": training.seed}
    if model_args.use_peft:
        run["LoRA"] = f"r={model_args.lora_r}, alpha={model_args.lora_alpha} (policy and value), merged"
    files = {"weights": weights, run_folder.CONFIG_FILE: "every setting; rerun with `heal ppo --config "
             f"{run_folder.CONFIG_FILE}`", run_folder.METRICS_FILE: "one JSON object per PPO update (keys in "
             "heal.ppo.report)", CURVES_FILE: "reward, KL, losses, response statistics",
             SAMPLES_FILE: "sampled responses during training", EVAL_ANSWERS_FILE: "held-out greedy answers before "
             "and after", run_folder.RUN_FILE: "run identity, status, ranks"}
    return ModelCard(
        title=folder.name, stage="ppo", base_model=base, base_is_hub=info.source == "hub", weights=weights,
        summary=f"`{base}` optimised with PPO against {reward_desc} on {script.task()} prompts (HEAL).",
        data=data, training=run, metrics=metrics, credentialed=credentialed, files=files,
        usage=CAUSAL_LM_USAGE.format(path=folder))
