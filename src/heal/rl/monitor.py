"""The over-optimisation monitor of `heal ppo` and `heal grpo` (Gao et al. 2022, "Scaling Laws for Reward Model
Overoptimization"): a policy optimised against a proxy reward first gains on the measure one really wants, then loses
on it while the proxy keeps rising. The monitor makes that visible and lets a run keep its best model by the gold.

    heal ppo … --reward_model_path models/rm --gold_reward rule:pubmedqa --eval_steps 5 --keep_best true

At update 0, every --eval_steps updates and after the last update, the held-out prompts (the run's eval split) are
answered greedily (heal.rl.heldout.evaluate, the answers the before/after evaluation scores) and each answer is scored
by the training reward (the proxy) and by the gold measure; metrics.jsonl gets one row per point:

    monitor/step      the update the point was measured after (0 = the starting policy)
    monitor/proxy     mean training reward of the greedy held-out answers
    monitor/gold      mean gold score of the same answers
    monitor/accuracy  share of labelled answers whose yes/no/maybe matches (records with a label only)
    monitor/kl        KL(π ‖ π_ref) per response on the held-out prompts: one answer per prompt sampled at the training
                      temperature (fixed seed), Σ_t log π(a_t) − log π_ref(a_t) summed over its tokens (k1, both at
                      that temperature), averaged over prompts — an unbiased estimate of what PPO's objective/kl
                      estimates on training prompts. Greedy answers are not samples of π, so their log-ratio would not
                      estimate a KL; the starting policy is the reference, so its KL is 0 by definition.

--keep_best: whenever a point's gold is the best so far (strictly), the policy is saved (LoRA merged) to
`best-gold/`; at the end that copy replaces the final weights, the folder is removed, and the card and run summary say
which update it was, beside the last update's gold. Figure: overoptimisation.png (plot_overoptimisation).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from heal.errors import HealError
from heal.models import run_folder
from heal.rl.monitor_report import FIGURE_FILE, card_lines, key_metrics, plot_overoptimisation  # noqa: F401
from heal.rl.rewards import RewardSpec, parse_reward

BEST_DIR = "best-gold"
BEST_FILE = "heal_best.json"
DEFAULT_POINTS = 10  # without --eval_steps: about ten points between the first and the last update


def parse_gold(gold: str, proxy: RewardSpec) -> RewardSpec:
    """--gold_reward as a RewardSpec: rule:<name>, judge:<spec>, a bare judge spec (hf:…, openai:…, embedding…) or a
    reward-model folder. The gold must differ from the training reward, or the monitor measures nothing new."""
    from heal.feedback.judges import JUDGE_KINDS

    if gold.startswith(("rule:", "judge:")):
        flag = gold
    elif gold.partition(":")[0] in JUDGE_KINDS:
        flag = f"judge:{gold}"
    else:
        flag = None
    try:
        spec = parse_reward(flag, None if flag else gold)
        if spec.kind == "model":
            from heal.rl.rewards import require_reward_model

            require_reward_model(gold)
    except HealError as e:
        detail = str(e).split(": ", 1)[-1] if ": " in str(e) else str(e)
        raise HealError(f"--gold_reward {gold}: {detail}") from None
    if spec.target == proxy.target:
        raise HealError(f"--gold_reward {gold}: is the training reward itself; the gold must be another measure "
                        "(a rule, a different judge, or a held-out reward model)")
    return spec


def check_request(script, sharded: bool) -> None:
    """Fail fast on monitor flags that cannot work together (before any model is loaded)."""
    if script.keep_best and not script.gold_reward:
        raise HealError("--keep_best true needs --gold_reward <spec>: the best checkpoint is the best by the gold "
                        "measure")
    if not script.gold_reward:
        return
    if script.eval_split_size == 0 and not script.eval_dataset_path:
        raise HealError("--gold_reward: the monitor scores held-out prompts; set --eval_dataset_path or a non-zero "
                        "--eval_split_size")
    if script.keep_best and sharded:
        raise HealError("--keep_best with FSDP/DeepSpeed ZeRO-3: the best copy is saved from one process; train "
                        "without sharding, or leave --keep_best off")
    return None  # parsed by the verb with its proxy spec (parse_gold)


def every(eval_steps: float | None, updates: int) -> int:
    """Updates between two points: --eval_steps (a share of the updates when below 1), else about DEFAULT_POINTS."""
    if eval_steps is None or eval_steps <= 0:
        return max(1, updates // DEFAULT_POINTS)
    if eval_steps < 1:
        return max(1, math.ceil(eval_steps * updates))
    return int(eval_steps)


class GoldMonitor:
    """Held-out proxy and gold scores and KL at chosen updates, and the best policy by the gold (one per process)."""

    def __init__(self, proxy, gold, gold_spec: RewardSpec, settings, records: list[dict], tokenizer, accelerator,
                 folder: str | Path, every: int, keep_best: bool, temperature: float, seed: int = 0,
                 stop_ids: list[int] | None = None):
        """`proxy`, `gold`: reward sources (heal.rl.rewards); `settings`: greedy RolloutSettings for the held-out
        answers; `temperature`: the training temperature (the KL's samples)."""
        self.proxy, self.gold, self.gold_spec, self.settings, self.records = proxy, gold, gold_spec, settings, records
        self.tokenizer, self.accelerator, self.folder = tokenizer, accelerator, Path(folder)
        self.every, self.keep_best, self.temperature, self.seed = every, keep_best, temperature, seed
        self.stop_ids = stop_ids  # written into the best copy's generation config (as PPO's final save does)
        self.best: tuple[int, float] | None = None

    def due(self, step: int, last: int) -> bool:
        """A point after this update? (the last update's point is taken after training, with the final evaluation)"""
        return step % self.every == 0 and 0 < step < last

    def point(self, step: int, policy, reference, evaluated: dict | None = None, prefix: str = "eval") -> dict:
        """The monitor row for the policy after `step` updates. `evaluated`: metrics heal.rl.heldout.evaluate already
        computed for these prompts with this gold (the before/after evaluation): reused instead of answering again.
        `reference`: the frozen reference, or None when the policy is a PEFT model (its adapters off)."""
        from heal.rl.heldout import evaluate

        if evaluated is None or f"{prefix}/gold" not in evaluated:
            evaluated, _ = evaluate(policy, self.tokenizer, self.proxy, self.settings, self.records, self.accelerator,
                                    "monitor", 0.0, self.seed, gold=self.gold)
            prefix = "monitor"
        kl = 0.0 if step == 0 else sampled_kl(policy, reference, self.tokenizer, self.settings, self.records,
                                                 self.accelerator, self.temperature, self.seed)
        row = {"monitor/step": step, "monitor/proxy": evaluated[f"{prefix}/score"],
               "monitor/gold": evaluated[f"{prefix}/gold"], "monitor/kl": kl}
        if f"{prefix}/accuracy" in evaluated:
            row["monitor/accuracy"] = evaluated[f"{prefix}/accuracy"]
        if self.keep_best and (self.best is None or row["monitor/gold"] > self.best[1]):
            self.best = (step, row["monitor/gold"])
            self._save_best(policy, row)
        return row

    def _save_best(self, policy, row: dict) -> None:
        import copy

        acc = self.accelerator
        acc.wait_for_everyone()
        if acc.is_main_process:
            path = self.folder / BEST_DIR
            shutil.rmtree(path, ignore_errors=True)
            model = copy.deepcopy(policy).merge_and_unload() if hasattr(policy, "merge_and_unload") else policy
            if self.stop_ids:
                model.generation_config.eos_token_id = self.stop_ids
            model.save_pretrained(path)
            (path / BEST_FILE).write_text(json.dumps(row), encoding="utf-8")  # written last: the copy is complete
        acc.wait_for_everyone()

    def resume(self, checkpoint_step: int | None) -> None:
        """On resume: keep the saved best copy if it was measured at or before the checkpoint (later points are
        measured again); a copy from after it belongs to the attempt that is being replayed, and is removed."""
        path = self.folder / BEST_DIR
        marker = path / BEST_FILE
        if checkpoint_step is None or not marker.exists():
            shutil.rmtree(path, ignore_errors=True)
            return
        row = json.loads(marker.read_text(encoding="utf-8"))
        if int(row["monitor/step"]) <= checkpoint_step:
            self.best = (int(row["monitor/step"]), float(row["monitor/gold"]))
        elif self.accelerator.is_main_process:
            shutil.rmtree(path, ignore_errors=True)

    def finish(self, staging: Path, last_step: int) -> dict:
        """With --keep_best: put the best copy's weights in place of the final ones in `staging` (main process) and
        return what the card and run summary say about it ({} without --keep_best)."""
        if not self.keep_best or self.best is None:
            return {}
        best_step, best_gold = self.best
        path = self.folder / BEST_DIR
        if self.accelerator.is_main_process:
            if best_step != last_step:
                for old in staging.iterdir():  # the tokenizer stays; weights, config and generation config go
                    if old.suffix in (".safetensors", ".bin", ".pt") or old.name in (
                            "config.json", "generation_config.json", "model.safetensors.index.json"):
                        old.unlink()
                for new in path.iterdir():
                    if new.name != BEST_FILE:
                        shutil.copy2(new, staging / new.name)
            shutil.rmtree(path, ignore_errors=True)
        last = [r for r in run_folder.read_metrics(self.folder) if r.get("monitor/step") == last_step]
        return {"best_step": best_step, "best_gold": best_gold, "last_step": last_step,
                "last_gold": last[-1]["monitor/gold"] if last else None}


def sampled_kl(policy, reference, tokenizer, settings, records: list[dict], accelerator, temperature: float,
               seed: int = 0) -> float:
    """Mean over `records` of Σ_t log π(a_t) − log π_ref(a_t) for one answer per prompt sampled from π at
    `temperature` (both log-probabilities at that temperature, as PPO scores them). `reference` None: `policy` is a
    PEFT model and the reference is the policy with its adapters disabled."""
    import torch
    from accelerate.utils import gather_object

    from heal.rl.sampling import encode_prompts, generate, left_pad, truncate_after_stop

    device = next(policy.parameters()).device
    mine = records[accelerator.process_index::accelerator.num_processes]
    values: list[float] = []
    was_training = policy.training
    policy.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed + 1 + accelerator.process_index)  # not the held-out sampled evaluation's numbers
        for start in range(0, len(mine), settings.forward_batch_size):
            chunk = mine[start:start + settings.forward_batch_size]
            query, query_mask = left_pad(encode_prompts(tokenizer, chunk, settings.system_prompt,
                                                        settings.max_prompt_length), tokenizer.pad_token_id, device)
            raw = generate(policy, query, query_mask, settings.response_length, temperature, settings.stop_ids,
                           tokenizer.pad_token_id)
            response, mask, _ = truncate_after_stop(raw, settings.stop_ids, tokenizer.pad_token_id)
            logp = _logprobs(policy, query, query_mask, response, mask, temperature)
            if reference is None:
                with policy.disable_adapter():
                    ref = _logprobs(policy, query, query_mask, response, mask, temperature)
            else:
                ref = _logprobs(reference, query, query_mask, response, mask, temperature)
            values += ((logp - ref) * mask).sum(dim=1).tolist()  # (B,)
    policy.train(was_training)
    values = gather_object(values) if accelerator.num_processes > 1 else values
    return sum(values) / len(values) if values else 0.0


def _logprobs(model, query, query_mask, response, response_mask, temperature: float):
    """(B, T) log-probabilities of the response tokens at `temperature`."""
    import torch

    from heal.models.trunk import response_logits
    from heal.rl.rewards import sequence_inputs

    input_ids, attention_mask, position_ids = sequence_inputs(query, query_mask, response, response_mask)
    logits = response_logits(model, input_ids, attention_mask, position_ids, response.shape[1])
    logprobs = torch.log_softmax(logits.float() / (temperature + 1e-7), dim=-1)
    return logprobs.gather(-1, response.unsqueeze(-1)).squeeze(-1)


def trainer_callback(monitor: GoldMonitor, reference, eval_steps: float | None):
    """A transformers TrainerCallback (TRL's GRPOTrainer) that takes the monitor's points between the first and the
    last optimizer step; the first and last points come with the verb's before/after evaluation. `reference` as in
    GoldMonitor.point; `eval_steps` as in every()."""
    from transformers import TrainerCallback

    class MonitorCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            monitor.every = every(eval_steps, state.max_steps)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if not monitor.due(state.global_step, state.max_steps):
                return
            # on_step_end runs before the Trainer's checkpoint of this step: a resumed run logs the point once
            policy = monitor.accelerator.unwrap_model(model)
            row = monitor.point(state.global_step, policy, reference)
            if monitor.accelerator.is_main_process:
                run_folder.append_row(monitor.folder, state.global_step, row)

    return MonitorCallback()
