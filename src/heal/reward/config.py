"""Settings of `heal reward`: HEAL's own (data, pairs, normalisation) plus TRL's RewardConfig and ModelConfig.

Every TrainingArguments/RewardConfig flag and every ModelConfig flag (use_peft, lora_r, …) is accepted as is; only the
defaults below differ, each with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig, RewardConfig

from heal.data.schema import TASK_CHOICES, training_task
from heal.models.tiny import TinyConfig
from heal.runs import CheckpointingDefaults, LearningRates

LR_FROM_SCRATCH = 1e-3  # heal-tiny as a reward backbone starts from random weights
LR_FULL = 1e-5  # full fine-tuning of a pretrained backbone (TRL's reward example uses 1e-5 … 2e-5)
LR_LORA = 1e-4
LEARNING_RATES = LearningRates(small=LR_FROM_SCRATCH, lora=LR_LORA, full=LR_FULL)


@dataclass
class RewardScriptConfig:
    """Where the preference pairs come from and where the run goes."""

    dataset: str = field(default="pubmedqa", metadata={
        "help": "The task (pubmedqa, safety, mimic, aci, other): says how to derive pairs from a processed file that "
                "has no chosen/rejected columns.", "choices": list(TASK_CHOICES)})
    dataset_path: str | None = field(default=None, metadata={
        "help": "Preference pairs (prompt/chosen/rejected, question/response_chosen/response_rejected, HH-RLHF "
                "transcripts, conversational) — or a processed file from `heal prep`, from which reference pairs "
                "are derived (PubMedQA: gold answer vs a wrong decision; safety: safe response vs a compliant policy "
                "sample), or AI-labelled pairs when --judge is given."})
    eval_dataset_path: str | None = field(default=None, metadata={
        "help": "Held-out pairs (same formats). Default: hold out --eval_split_size of --dataset_path."})
    eval_split_size: float = field(default=0.1, metadata={
        "help": "Held-out share (<1) or count (>=1) of the pairs for pairwise accuracy; 0 disables evaluation."})
    judge: str | None = field(default=None, metadata={
        "help": "Label pairs with this AI judge (RLAIF) instead of deriving them from references: hf:<path>, "
                "openai:<model>, embedding[:<model>], rule:pubmedqa, rule:refusal, safety:<grader>. Candidates are sampled from "
                "--policy_name."})
    policy_name: str | None = field(default=None, metadata={
        "help": "Policy that writes candidate answers for --judge labelling and for safety pairs (default: "
                "--model_name, i.e. the SFT model the reward model starts from)."})
    judge_base_url: str | None = field(default=None, metadata={"help": "Base URL of an OpenAI-compatible judge."})
    pair_seed: int = field(default=0, metadata={"help": "Seed for deriving and splitting pairs."})
    normalize_rewards: bool = field(default=True, metadata={
        "help": "After training, measure the reward of the reference answers (the chosen answers when there are no "
                "references) and store mean/std with the model so references score mean 0, std 1."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace a previous HEAL run in --output_dir (a folder holding anything else is never touched)."})
    allow_credentialed_data_to_remote_endpoint: bool = field(default=False, metadata={
        "help": "DANGER: let credentialed (MIMIC) records reach a non-loopback judge (PhysioNet DUA forbids it)."})

    def task(self) -> str:
        return training_task(self.dataset)


@dataclass
class HealRewardConfig(CheckpointingDefaults, RewardConfig):
    """TRL's RewardConfig with HEAL's defaults (the same device and checkpoint defaults as `heal sft`)."""

    output_dir: str | None = field(default="models/reward_model/rm", metadata={
        "help": "Output folder: final reward model + tokenizer, checkpoints, metrics.jsonl, curves, model card."})
    learning_rate: float | None = field(default=None, metadata={
        "help": f"Peak AdamW learning rate. Default: {LR_FROM_SCRATCH:g} for heal-tiny, {LR_LORA:g} with LoRA, "
                f"{LR_FULL:g} for full fine-tuning."})
    max_length: int | None = field(default=1024, metadata={
        "help": "Longest tokenized prompt+answer; capped by the model's context. Longer pairs are cut to fit "
                "(--keep_long_pairs) or left out."})
    keep_long_pairs: bool = field(default=True, metadata={
        "help": "Keep pairs longer than --max_length by cutting them from the left, as the reward model reads text "
                "when it scores: the earliest turns of the conversation go, both answers stay whole unless one alone "
                "is too long. False leaves them out, as TRL does (on HH-RLHF at 256 MiniLM tokens, one pair in five)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the training pairs."})
    gradient_checkpointing: bool | None = field(default=None, metadata={
        "help": "Deprecated alias of --activation_checkpointing (transformers 5).", "nargs": "?", "const": True})
    eval_strategy: str = field(default="epoch", metadata={
        "help": "When to measure pairwise accuracy: no, steps, epoch."})
    save_strategy: str = field(default="steps", metadata={"help": "When to checkpoint: no, steps or epoch."})
    save_steps: float = field(default=200, metadata={"help": "Checkpoint every N optimizer steps."})


@dataclass
class RewardModelConfig(ModelConfig):
    """TRL's ModelConfig; --model_name is the backbone: the SFT model (decoder) or an encoder such as a BERT."""

    model_name_or_path: str | None = field(default="heal-tiny", metadata={
        "help": "Backbone: the SFT policy's folder (the N+ implementation details initialise the reward model from "
                "it), any Hub/local decoder or encoder, or heal-tiny (random init, for smoke tests).",
        "aliases": ["--model_name"]})
    lora_task_type: str = field(default="SEQ_CLS", metadata={"help": "PEFT task type of the LoRA adapter."})


CONFIG_TYPES = (RewardScriptConfig, HealRewardConfig, RewardModelConfig, TinyConfig)
