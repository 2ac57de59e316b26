"""Everything a PPO run holds between updates, built once: accelerator, models, optimizer, schedule, KL controller,
batch sizes — and its checkpoints (accelerate's save_state/load_state plus a trainer_state.json written last).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from heal.errors import HealError
from heal.models import run_folder
from heal.ppo.config import LEARNING_RATES, HealPPOConfig
from heal.rl.rewards import RewardSpec

if TYPE_CHECKING:  # annotations only: importing these at module level would pull in accelerate and torch
    from accelerate import Accelerator
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from heal.models.loading import ModelInfo
    from heal.ppo.kl import AdaptiveKLController, FixedKLController
    from heal.ppo.models import PolicyAndValue
    from heal.rl.monitor import GoldMonitor
    from heal.rl.rewards import JudgeSource, RewardModelSource
    from heal.rl.sampling import RolloutSettings

SHARED_VALUE_INIT = ("a zero-initialised value head on the policy's own trunk (--share_backbone: no separate "
                     "value model)")
STATE_FILE = "trainer_state.json"  # written last: a checkpoint without it is incomplete (heal.models.run_folder)


@dataclass(frozen=True)
class Sizes:
    """Batch sizes as TRL 1.12.0's PPOTrainer.__init__ computes them (trl/experimental/ppo/ppo_trainer.py; names in
    the comments are TRL's `args.*`), and the number of PPO updates. heal.ppo.config has the formulas."""

    world_size: int  # world_size
    micro_batch: int  # rows per forward/backward: per_device_train_batch_size (the minibatch, if that is smaller)
    local_batch: int  # local_batch_size: rollouts per process per update
    batch: int  # batch_size: rollouts per update, all processes
    local_mini_batch: int  # local_mini_batch_size: rollouts per process per optimizer step
    mini_batch: int  # mini_batch_size: rollouts per optimizer step, all processes
    accumulation: int  # micro-batches per optimizer step
    updates: int  # num_total_batches (or --max_steps)
    per_device: int  # per_device_train_batch_size

    @property
    def micro_batch_all(self) -> int:
        """TRL's micro_batch_size: per_device_train_batch_size × world_size."""
        return self.per_device * self.world_size


def batch_sizes(training, world_size: int, n_prompts: int) -> Sizes:
    per_device = training.per_device_train_batch_size
    local = per_device * training.gradient_accumulation_steps
    if training.num_mini_batches < 1 or local % training.num_mini_batches:
        raise HealError(f"--num_mini_batches {training.num_mini_batches} must divide the rollouts per process "
                        f"({local} = per_device_train_batch_size {per_device} × gradient_accumulation_steps "
                        f"{training.gradient_accumulation_steps}), as in TRL 1.12")
    mini = local // training.num_mini_batches
    micro = min(per_device, mini)  # TRL slices micro-batches of per_device rows out of each minibatch
    batch = local * world_size
    if training.max_steps and training.max_steps > 0:
        updates = int(training.max_steps)
    else:
        episodes = training.total_episodes or int(training.num_train_epochs * n_prompts)
        updates = max(1, math.ceil(episodes / batch))
    return Sizes(world_size, micro, local, batch, mini, mini * world_size, math.ceil(mini / micro), updates, per_device)


@dataclass
class PPORun:
    """The live state of a run (one per process)."""

    args: HealPPOConfig
    accelerator: Accelerator
    model: PolicyAndValue  # prepared: DDP-wrapped under torchrun (`unwrapped` is the module itself)
    reference: PreTrainedModel | None  # frozen initial policy, or None with LoRA (the adapters disabled)
    reward_spec: RewardSpec  # what --reward asked for, parsed once
    reward: RewardModelSource | JudgeSource  # the scorer built from reward_spec
    tokenizer: PreTrainedTokenizerBase
    optimizer: Optimizer
    scheduler: LRScheduler
    kl_ctl: FixedKLController | AdaptiveKLController
    settings: RolloutSettings
    sizes: Sizes
    prompts: list[dict]
    info: ModelInfo  # where the policy came from (model card)
    step: int = 0  # PPO updates done
    rollouts_this_run: int = 0  # rollouts this process made since it started (resumes count from 0)
    updates_this_run: int = 0
    value_init: str = ""
    monitor: GoldMonitor | None = None  # --gold_reward: the over-optimisation monitor (heal.rl.monitor)

    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)


def make_accelerator(training, sizes_accumulation: int, trackers: list):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    precision = "bf16" if training.bf16 else "fp16" if training.fp16 else "no"
    return Accelerator(cpu=training.use_cpu, mixed_precision=precision, log_with=trackers or None,
                       gradient_accumulation_steps=sizes_accumulation,
                       project_config=ProjectConfiguration(project_dir=training.output_dir,
                                                           logging_dir=str(Path(training.output_dir) / "runs")))


def make_optimizer(training, model, total_steps: int):
    import torch
    from transformers import get_scheduler

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=training.learning_rate, betas=(training.adam_beta1, training.adam_beta2),
                                  eps=training.adam_epsilon, weight_decay=training.weight_decay)
    warmup = training.get_warmup_steps(total_steps)
    scheduler = get_scheduler(training.lr_scheduler_type, optimizer, num_warmup_steps=warmup,
                              num_training_steps=total_steps, scheduler_specific_kwargs=training.lr_scheduler_kwargs)
    return optimizer, scheduler


# --- checkpoints (the run folder itself is heal.runs') ----------------------------------------------------------------

def save_checkpoint(run: PPORun, folder: Path) -> None:
    """checkpoint-N/: accelerate's state (weights, optimizer, schedule, KL controller, every process's RNG), then
    trainer_state.json (main process, last). Older checkpoints beyond --save_total_limit are removed."""
    import shutil

    path = folder / f"checkpoint-{run.step}"
    run.accelerator.save_state(str(path), safe_serialization=False)
    run.accelerator.wait_for_everyone()
    if run.accelerator.is_main_process:
        from heal.data.io import write_json

        write_json(path / STATE_FILE, {"global_step": run.step, "kl_coef": run.kl_ctl.value,
                                       "batch_size": run.sizes.batch, "world_size": run.sizes.world_size})
        limit = run.args.save_total_limit
        if limit:
            for _, old in run_folder.checkpoints(folder)[:-limit]:
                shutil.rmtree(old, ignore_errors=True)
    run.accelerator.wait_for_everyone()


def load_checkpoint(run: PPORun, checkpoint: str) -> None:
    state = json.loads((Path(checkpoint) / STATE_FILE).read_text(encoding="utf-8"))
    if state.get("batch_size") != run.sizes.batch:
        raise HealError(f"--resume_from_checkpoint {checkpoint}: it was trained with {state.get('batch_size')} "
                        f"rollouts per update, this run has {run.sizes.batch}; keep the batch settings and the "
                        "number of processes to resume")
    run.accelerator.load_state(checkpoint)
    run.step = int(state["global_step"])
    run.kl_ctl.value = float(state["kl_coef"])


# --- building a run ------------------------------------------------------------------------------------------------

def check_settings(training, script=None) -> None:
    """Fail fast on PPO settings that cannot work (before any model is loaded)."""
    if training.temperature <= 0:
        raise HealError(f"--temperature {training.temperature:g}: PPO samples its rollouts; use a value > 0 "
                        "(0.7 is TRL's default)")
    if training.response_length < 1:
        raise HealError(f"--response_length {training.response_length}: must be at least 1")
    if training.missing_eos_penalty is not None and training.missing_eos_penalty < 0:
        raise HealError(f"--missing_eos_penalty {training.missing_eos_penalty:g}: must be positive (it is "
                        "subtracted from the score)")
    if training.kl_target is not None and training.kl_target <= 0:
        raise HealError(f"--kl_target {training.kl_target:g}: must be positive (or unset for a fixed --kl_coef)")
    if training.stop_token is not None and training.stop_token_id is not None:
        raise HealError("--stop_token and --stop_token_id are exclusive; pass one of them")
    if training.share_backbone and getattr(script, "value_model_path", None):
        raise HealError("--share_backbone and --value_model_path are exclusive: with a shared backbone the value head "
                        "sits on the policy; drop one of them")
    if training.num_ppo_epochs < 1 or training.local_rollout_forward_batch_size < 1:
        raise HealError("--num_ppo_epochs and --local_rollout_forward_batch_size must be at least 1")


def stop_ids(training, tokenizer) -> list[int]:
    from heal.models.prompting import stop_token_ids

    if training.stop_token_id is not None:
        return [int(training.stop_token_id)]
    if training.stop_token == "eos":
        return [tokenizer.eos_token_id]
    return stop_token_ids(tokenizer)


def value_start(script, reward, policy_path: str) -> tuple[str, bool, str]:
    """(path, new head?, description) of the value model's starting point (heal.ppo.models)."""
    from transformers import AutoConfig

    from heal.models.loading import model_location
    from heal.rl.rewards import RewardModelSource

    if script.value_model_path:
        path = script.value_model_path
        try:
            architectures = AutoConfig.from_pretrained(model_location(path, "--value_model_path")).architectures or []
        except (OSError, ValueError) as e:
            raise HealError(f"--value_model_path {path}: cannot read its config ({str(e).splitlines()[0]})") from None
        new_head = not any(a.endswith("ForSequenceClassification") for a in architectures)
        return path, new_head, f"{path} (--value_model_path)"
    if isinstance(reward, RewardModelSource) and reward.same_tokens:
        return reward.path, False, f"the reward model {reward.path}"
    why = ("the reward model's tokenizer differs" if isinstance(reward, RewardModelSource) else
           "the reward is not a model")
    return policy_path, True, f"the policy {policy_path} with a zero value head ({why})"


def build_run(script, training, model_args, reward_spec: RewardSpec, prompts: list[dict], sizes: Sizes,
              credentialed: bool, trackers: list) -> PPORun:
    from accelerate.utils import set_seed

    from heal import runs
    from heal.ppo.kl import make_kl_controller
    from heal.ppo.models import (PolicyAndValue, SharedTrunkPolicyAndValue, load_policy_and_reference,
                                 load_value_model)
    from heal.rl.rewards import make_reward_source
    from heal.rl.sampling import RolloutSettings

    set_seed(training.seed)
    policy, reference, tokenizer, info = load_policy_and_reference(model_args, training)
    reward = make_reward_source(reward_spec, script, tokenizer, credentialed, training.local_rollout_forward_batch_size)
    if training.share_backbone:
        model = SharedTrunkPolicyAndValue(policy)
        value_init = SHARED_VALUE_INIT
    else:
        value_path, new_head, value_init = value_start(script, reward, model_args.model_name_or_path)
        model = PolicyAndValue(policy, load_value_model(value_path, tokenizer, model_args, new_head))
    if training.torch_compile:
        model.compile(**{k: v for k, v in (("backend", training.torch_compile_backend),
                                            ("mode", training.torch_compile_mode)) if v})
    if training.learning_rate is None:
        training.learning_rate = LEARNING_RATES.pick(runs.built_from_heal_tiny(model_args.model_name_or_path),
                                                     model_args.use_peft)
    accelerator = make_accelerator(training, sizes.accumulation, trackers)
    optimizer, scheduler = make_optimizer(training, model,
                                          sizes.updates * training.num_ppo_epochs * training.num_mini_batches)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    set_seed(training.seed, device_specific=True)  # each process samples its own responses
    if reference is not None:
        reference.to(accelerator.device)
    settings = RolloutSettings(
        response_length=training.response_length, temperature=training.temperature,
        stop_ids=stop_ids(training, tokenizer), max_prompt_length=max_prompt_length(training, policy.config),
        forward_batch_size=training.local_rollout_forward_batch_size,
        missing_eos_penalty=training.missing_eos_penalty, system_prompt=script.system_prompt,
        policy_pass=sizes.local_mini_batch != sizes.local_batch or sizes.micro_batch != sizes.local_batch)
    kl_ctl = make_kl_controller(training.kl_coef, training.kl_target, training.kl_horizon)
    return PPORun(args=training, accelerator=accelerator, model=model, reference=reference, reward_spec=reward_spec,
                  reward=reward.to(accelerator.device), tokenizer=tokenizer, optimizer=optimizer, scheduler=scheduler,
                  kl_ctl=kl_ctl, settings=settings, sizes=sizes, prompts=prompts, info=info, value_init=value_init)


def build_monitor(run: PPORun, script, gold: RewardSpec, records: list[dict], folder: Path,
                  credentialed: bool) -> GoldMonitor:
    """The over-optimisation monitor: the gold scorer, and greedy held-out answers as the evaluation makes them."""
    from dataclasses import replace

    from heal.rl.monitor import GoldMonitor, every
    from heal.rl.rewards import make_reward_source

    source = make_reward_source(gold, script, run.tokenizer, credentialed, run.args.local_rollout_forward_batch_size)
    return GoldMonitor(run.reward, source.to(run.accelerator.device), gold, replace(run.settings, temperature=0.0),
                       records, run.tokenizer, run.accelerator, folder, every(run.args.eval_steps, run.sizes.updates),
                       script.keep_best, run.settings.temperature, run.args.seed, run.settings.stop_ids)


def max_prompt_length(training, config) -> int:
    """--max_prompt_length, or what the model's context (`config`) leaves beside --response_length."""
    from heal.rl.prompts import prompt_room

    return prompt_room(config, training.max_prompt_length, training.response_length, "--response_length")


def check_prompt_lengths(training, model_args, script, prompt_sets: list[tuple[list[dict], str]]) -> None:
    """heal.rl.prompts.check_prompt_lengths with PPO's --response_length."""
    from heal.rl.prompts import check_prompt_lengths as check

    check(model_args, script, prompt_sets, training.max_prompt_length, training.response_length, "--response_length")
