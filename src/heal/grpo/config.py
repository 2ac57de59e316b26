"""Settings of `heal grpo`: prompts and reward source (as `heal ppo` takes them), TRL's GRPOConfig and ModelConfig.

Every GRPOConfig/TrainingArguments flag (num_generations, max_completion_length, beta, epsilon, loss_type,
temperature, …) and every ModelConfig flag (use_peft, lora_r, …) is accepted as is; only the defaults below differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from heal.dpo.config import DPOModelConfig
from heal.rl.config import RLScriptConfig
from heal.runs import CheckpointingDefaults, LearningRates

LR_SMALL = 3e-4  # heal-tiny (as for PPO)
LR_LORA = 1e-5
LR_FULL = 1e-6  # TRL's GRPO default
LEARNING_RATES = LearningRates(small=LR_SMALL, lora=LR_LORA, full=LR_FULL)


@dataclass
class GRPOScriptConfig(RLScriptConfig):
    """Prompts, reward and output folder: the same settings as `heal ppo` (GRPO has no value model, so
    --value_model_path is ignored)."""


@dataclass
class HealGRPOConfig(CheckpointingDefaults, GRPOConfig):
    """TRL's GRPOConfig with HEAL's defaults (the same device and checkpoint defaults as `heal sft`)."""

    output_dir: str | None = field(default="models/policy_model/grpo", metadata={
        "help": "Output folder: final policy + tokenizer, checkpoints, metrics.jsonl, loss curve, model card."})
    reward_model_path: str | None = field(default=None, metadata={
        "help": "Reward model folder from `heal reward` (normalised scores), when --reward is not given."})
    learning_rate: float | None = field(default=None, metadata={
        "help": f"Peak AdamW learning rate. Default: {LR_SMALL:g} for heal-tiny, {LR_LORA:g} with LoRA, "
                f"{LR_FULL:g} for full fine-tuning."})
    max_completion_length: int | None = field(default=64, metadata={
        "help": "Longest sampled completion in tokens (TRL: 512; HEAL's answers are short, and on a CPU every token "
                "costs)."})
    num_generations: int | None = field(default=4, metadata={
        "help": "Completions sampled per prompt (the group whose mean reward is the baseline). The batch "
                "(per_device_train_batch_size × processes × gradient_accumulation_steps) must be a multiple."})
    max_prompt_length: int | None = field(default=None, metadata={
        "help": "Longest prompt in tokens (longer ones lose their beginning). Unset: every prompt must fit the "
                "model's context minus --max_completion_length (a longer one is an error), as in `heal ppo`."})
    per_device_train_batch_size: int = field(default=8, metadata={
        "help": "Completions (not prompts) per process per micro-batch."})
    gradient_checkpointing: bool | None = field(default=None, metadata={
        "help": "Deprecated alias of --activation_checkpointing (transformers 5).", "nargs": "?", "const": True})
    eval_steps: float | None = field(default=None, metadata={
        "help": "With --gold_reward: a monitor point every N optimizer steps (below 1: a share of them). Default: "
                "about 10 points over the run."})
    logging_steps: float = field(default=5, metadata={"help": "Log every N optimizer steps."})
    save_strategy: str = field(default="steps", metadata={"help": "When to checkpoint: no, steps or epoch."})
    save_steps: float = field(default=200, metadata={"help": "Checkpoint every N optimizer steps."})


@dataclass
class GRPOModelConfig(DPOModelConfig):
    """TRL's ModelConfig; --model_name is the policy (the SFT model), which is also the reference."""


CONFIG_TYPES = (GRPOScriptConfig, HealGRPOConfig, GRPOModelConfig)
