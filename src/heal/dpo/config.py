"""Settings of `heal dpo`: the preference data (as `heal reward` reads it), TRL's DPOConfig and ModelConfig.

Every DPOConfig/TrainingArguments flag (beta, loss_type, max_length, learning_rate, …) and every ModelConfig flag
(use_peft, lora_r, …) is accepted as is; only the defaults below differ, each for the reason beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import DPOConfig, ModelConfig

from heal.data.schema import TASK_CHOICES, training_task
from heal.runs import CheckpointingDefaults, LearningRates

LR_SMALL = 1e-4  # heal-tiny: a small model trained from scratch moves little at the usual DPO rates
LR_LORA = 5e-5
LR_FULL = 1e-6  # TRL's DPO default (the DPO paper uses 5e-7 to 1e-6)
LEARNING_RATES = LearningRates(small=LR_SMALL, lora=LR_LORA, full=LR_FULL)


@dataclass
class DPOScriptConfig:
    """Where the preference pairs come from and where the run goes: the same data contract as `heal reward`."""

    dataset: str = field(default="pubmedqa", metadata={
        "help": "The task (pubmedqa, safety, mimic, aci, other): how pairs are derived from a processed file.",
        "choices": list(TASK_CHOICES)})
    dataset_path: str | None = field(default=None, metadata={
        "help": "Preference pairs (prompt/chosen/rejected and the other layouts `heal reward` reads), or a processed "
                "file from `heal prep` from which reference pairs are derived, or AI-labelled with --judge."})
    eval_dataset_path: str | None = field(default=None, metadata={
        "help": "Held-out pairs (same formats). Default: hold out --eval_split_size of --dataset_path."})
    eval_split_size: float = field(default=0.1, metadata={
        "help": "Held-out share (<1) or count (>=1) of the pairs for preference accuracy; 0 disables evaluation."})
    judge: str | None = field(default=None, metadata={
        "help": "Label pairs sampled from the policy with this AI judge (RLAIF): hf:<path>, openai:<model>, "
                "embedding[:<model>], rule:pubmedqa, rule:refusal, safety:<grader>."})
    judge_base_url: str | None = field(default=None, metadata={"help": "Base URL of an OpenAI-compatible judge."})
    pair_seed: int = field(default=0, metadata={"help": "Seed for deriving and splitting pairs."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace a previous HEAL run in --output_dir (a folder holding anything else is never touched)."})
    allow_credentialed_data_to_remote_endpoint: bool = field(default=False, metadata={
        "help": "DANGER: let credentialed (MIMIC) records reach a non-loopback judge (PhysioNet DUA forbids it)."})

    def task(self) -> str:
        return training_task(self.dataset)


@dataclass
class HealDPOConfig(CheckpointingDefaults, DPOConfig):
    """TRL's DPOConfig with HEAL's defaults (the same device and checkpoint defaults as `heal sft`)."""

    output_dir: str | None = field(default="models/policy_model/dpo", metadata={
        "help": "Output folder: final policy + tokenizer, checkpoints, metrics.jsonl, loss curve, model card."})
    learning_rate: float | None = field(default=None, metadata={
        "help": f"Peak AdamW learning rate. Default: {LR_SMALL:g} for heal-tiny, {LR_LORA:g} with LoRA, "
                f"{LR_FULL:g} for full fine-tuning."})
    gradient_checkpointing: bool | None = field(default=None, metadata={
        "help": "Deprecated alias of --activation_checkpointing (transformers 5).", "nargs": "?", "const": True})
    logging_steps: float = field(default=5, metadata={"help": "Log every N optimizer steps."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate: no, steps or epoch."})
    save_strategy: str = field(default="steps", metadata={"help": "When to checkpoint: no, steps or epoch."})
    save_steps: float = field(default=200, metadata={"help": "Checkpoint every N optimizer steps."})


@dataclass
class DPOModelConfig(ModelConfig):
    """TRL's ModelConfig; --model_name is the policy (the SFT model), which is also the frozen reference."""

    model_name_or_path: str | None = field(default=None, metadata={
        "help": "The policy to start from: the SFT model's folder or any Hub/local causal LM; also the reference.",
        "aliases": ["--model_name"]})
    merge_adapter: bool = field(default=True, metadata={
        "help": "With --use_peft: save the LoRA weights merged into the base (a plain model folder)."})


CONFIG_TYPES = (DPOScriptConfig, HealDPOConfig, DPOModelConfig)
