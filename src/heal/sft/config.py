"""Settings of `heal sft`: HEAL's own (data, output folder) plus TRL's SFTConfig and ModelConfig.

Every TrainingArguments/SFTConfig flag (learning rate, batch size, save_steps, packing, …) and every ModelConfig flag
(use_peft, lora_r, lora_alpha, lora_target_modules, load_in_4bit, dtype, …) is accepted as is; only the defaults
below differ, each for a reason given beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trl import ModelConfig, SFTConfig

from heal.data.schema import TASK_CHOICES, training_task
from heal.models.tiny import TinyConfig
from heal.runs import LearningRates, apply_device_defaults

# --dataset: the task. It picks the default max_length and says which columns a file without prompt/completion may
# use instead (the seed's and the upstream data sets' own column names; see heal.sft.data).
TASK_MAX_LENGTH = {
    "pubmedqa": 1024,  # question + abstract ≈ 300–500 tokens with common BPEs
    "mimic": 4096,  # a discharge note without its target sections is long; the summary must still fit
    "aci": 4096,  # a visit dialogue ≈ 1–2.5k tokens plus the note
    "safety": 1024,  # a request and a short safe answer
    "other": 1024,
}

# heal-tiny starts from random weights: SFT on it is pre-training, which wants a higher rate. On 900 synthetic PubMedQA
# records, 3 epochs at 1e-3 left the eval loss at 0.53 (answers always "yes"); at 2e-3 it was 0.03 after 3 epochs.
LR_FROM_SCRATCH = 2e-3
LR_LORA = 2e-4  # the usual LoRA rate (TRL's LoRA example, QLoRA paper)
LR_FULL = 2e-5  # TRL's full fine-tuning default
LEARNING_RATES = LearningRates(small=LR_FROM_SCRATCH, lora=LR_LORA, full=LR_FULL)


@dataclass
class SFTScriptConfig:
    """What to train on and where the run goes (HEAL's settings; the seed's flags keep their names)."""

    dataset: Literal[TASK_CHOICES] = field(default="pubmedqa", metadata={
        "help": "The task: pubmedqa, mimic, aci (aci_bench), safety (medsafety) or other. Picks the default "
                "max_length and which columns may stand in for prompt/completion."})
    dataset_path: str | None = field(default=None, metadata={
        "help": "Training records from `heal prep` (.csv, .jsonl or .parquet with prompt and completion columns)."})
    eval_dataset_path: str | None = field(default=None, metadata={
        "help": "Evaluation records (same format). Default: hold out --eval_split_size of --dataset_path."})
    eval_split_size: float = field(default=0.1, metadata={
        "help": "Held-out share (<1) or count (>=1) of --dataset_path for eval loss when --eval_dataset_path is not "
                "given; 0 disables evaluation."})
    max_train_samples: int | None = field(default=None, metadata={
        "help": "Use at most this many training records (after the eval split); for quick runs."})
    system_prompt: str | None = field(default=None, metadata={
        "help": "System message put before every prompt (chat templates) or above it (plain template)."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace a previous HEAL run in --output_dir (a folder holding anything else is never touched)."})
    eval_before_training: bool = field(default=True, metadata={
        "help": "Measure eval loss before the first step too, so the model card shows how far it fell."})

    def task(self) -> str:
        return training_task(self.dataset)


@dataclass
class HealSFTConfig(SFTConfig):
    """TRL's SFTConfig (all TrainingArguments) with HEAL's defaults."""

    output_dir: str | None = field(default="models/policy_model/sft", metadata={
        "help": "Output folder: final model + tokenizer, checkpoints, metrics.jsonl, loss_curve.png, model card."})
    learning_rate: float | None = field(default=None, metadata={
        "help": f"Peak learning rate for AdamW. Default: {LR_FROM_SCRATCH:g} for heal-tiny (trained from scratch), "
                f"{LR_LORA:g} with LoRA, {LR_FULL:g} for full fine-tuning."})
    max_length: int | None = field(default=None, metadata={
        "help": "Longest tokenized prompt+completion (longer ones are cut at the end; with packing, the block "
                "length). Default: per task (pubmedqa 1024, mimic and aci 4096, safety 1024), capped by the "
                "model's max_position_embeddings."})
    # TRL turns (the deprecated) gradient_checkpointing on by default; for the CPU-sized heal-tiny it only costs time,
    # so HEAL leaves it unset: --activation_checkpointing turns it on (the GPU presets do).
    gradient_checkpointing: bool | None = field(default=None, metadata={
        "help": "Deprecated alias of --activation_checkpointing (transformers 5).", "nargs": "?", "const": True})
    # Evaluate once per epoch when there is eval data (main() switches it off when there is none).
    eval_strategy: str = field(default="epoch", metadata={
        "help": "When to compute eval loss: no, steps (every --eval_steps) or epoch."})
    save_strategy: str = field(default="steps", metadata={"help": "When to checkpoint: no, steps or epoch."})
    save_steps: float = field(default=200, metadata={
        "help": "Write output_dir/checkpoint-N every N optimizer steps (--resume_from_checkpoint continues)."})
    save_total_limit: int | None = field(default=2, metadata={
        "help": "Keep only the newest N checkpoints (the final model is saved separately)."})
    resume_from_checkpoint: str | None = field(default=None, metadata={
        "help": "Continue a run: 'last' (or 'true') for the newest checkpoint in --output_dir, or a checkpoint path."})

    def __post_init__(self):
        apply_device_defaults(self)  # heal.runs: gloo without GPUs, bf16 only where supported
        super().__post_init__()


@dataclass
class HealModelConfig(ModelConfig):
    """TRL's ModelConfig (LoRA/QLoRA flags) whose model flag is also the seed's --model_name."""

    model_name_or_path: str | None = field(default="heal-tiny", metadata={
        "help": "Policy to fine-tune: a Hub id (Qwen/Qwen2.5-0.5B-Instruct), a local model folder, or heal-tiny "
                "(built offline from the training data). API-only models (gpt-4, …) cannot be fine-tuned.",
        "aliases": ["--model_name"]})
    merge_adapter: bool = field(default=True, metadata={
        "help": "With --use_peft: save the LoRA weights merged into the base (a plain model folder). false saves "
                "the adapter alone (small; needs the base model to load)."})


CONFIG_TYPES = (SFTScriptConfig, HealSFTConfig, HealModelConfig, TinyConfig)
