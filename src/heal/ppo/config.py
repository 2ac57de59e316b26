"""Settings of `heal ppo`: HEAL's own (prompts, reward source, output folder), the PPO knobs, and LoRA.

The PPO knobs keep the names of TRL 1.12's `PPOConfig` (response_length, num_ppo_epochs, num_mini_batches, kl_coef,
kl_estimator, cliprange, cliprange_value, vf_coef, gamma, lam, whiten_rewards, missing_eos_penalty, temperature,
stop_token, stop_token_id, local_rollout_forward_batch_size, total_episodes, sft_model_path, reward_model_path, …),
and `HealPPOConfig` is a `TrainingArguments` like TRL's, so a TRL PPO YAML carries over. Batch sizes are those TRL
1.12.0's PPOTrainer.__init__ computes (trl/experimental/ppo/ppo_trainer.py; tests/test_ppo_math.py checks them,
against TRL's own code where its venv exists):

    local_batch_size       = per_device_train_batch_size × gradient_accumulation_steps   (rollouts per process)
    batch_size             = local_batch_size × world_size                                (rollouts per PPO update)
    local_mini_batch_size  = local_batch_size / num_mini_batches                          (rollouts per optimizer step)
    mini_batch_size        = batch_size / num_mini_batches
    micro_batch_size       = per_device_train_batch_size × world_size    (rows per forward/backward, all processes)
    num_total_batches      = ceil(total_episodes / batch_size), total_episodes = num_train_epochs × prompts
                             (HEAL: or --max_steps updates when given)

(Earlier TRL releases multiplied local_batch_size by num_mini_batches as well; 1.12.0 does not.) One
difference in what happens with those sizes: HEAL takes one optimizer step per minibatch, accumulating its
micro-batches; TRL 1.12's accelerator steps every gradient_accumulation_steps micro-batches whatever the minibatch
boundaries, which is the same only when num_mini_batches is 1 or gradient_accumulation_steps is 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from transformers import TrainingArguments
from trl import ModelConfig

from heal.rl.config import RLScriptConfig
from heal.runs import CheckpointingDefaults, LearningRates

LR_SMALL = 3e-4  # heal-tiny (built by HEAL, ~1 M parameters): small models tolerate and need larger steps
LR_LORA = 1e-5  # LoRA on a pretrained model
LR_FULL = 3e-6  # full fine-tuning of a pretrained model (Huang et al. 2024 use 3e-6 for 1B–6.9B)
LEARNING_RATES = LearningRates(small=LR_SMALL, lora=LR_LORA, full=LR_FULL)


@dataclass
class PPOScriptConfig(RLScriptConfig):
    """Where the prompts and the reward come from, and where the run goes (HEAL's settings, shared with grpo)."""


@dataclass
class HealPPOConfig(CheckpointingDefaults, TrainingArguments):
    """PPO's knobs (TRL 1.12 PPOConfig names) on top of TrainingArguments (optimizer, schedule, logging, saving)."""

    output_dir: str | None = field(default="models/policy_model/ppo", metadata={
        "help": "Output folder: final policy + tokenizer, checkpoints, metrics.jsonl, PNG curves, model card."})
    sft_model_path: str | None = field(default=None, metadata={
        "help": "TRL's name for the policy to start from; same as --model_name (wins when both are given)."})
    reward_model_path: str | None = field(default=None, metadata={
        "help": "Reward model folder from `heal reward` (AutoModelForSequenceClassification, one output, "
                "normalised by config.json's heal_reward_normalization). Not needed with --reward judge:/rule:."})
    learning_rate: float | None = field(default=None, metadata={
        "help": f"AdamW learning rate for policy and value. Default: {LR_SMALL:g} for heal-tiny, {LR_LORA:g} with "
                f"LoRA, {LR_FULL:g} for full fine-tuning."})
    num_train_epochs: float = field(default=1.0, metadata={
        "help": "Passes over the prompts (total_episodes = epochs × prompts, unless --total_episodes is given)."})
    per_device_train_batch_size: int = field(default=16, metadata={
        "help": "Rollouts per process per forward/backward (micro-batch)."})
    total_episodes: int | None = field(default=None, metadata={
        "help": "Rollouts (prompt → response → reward) to train on in all. Default: num_train_epochs × prompts."})
    num_mini_batches: int = field(default=1, metadata={
        "help": "Optimizer steps per PPO epoch: the batch of rollouts is split into this many minibatches."})
    num_ppo_epochs: int = field(default=4, metadata={"help": "Passes of PPO updates over each batch of rollouts."})
    local_rollout_forward_batch_size: int = field(default=64, metadata={
        "help": "Rollouts per no-grad forward pass (generation, reference, value and reward scoring), per process."})
    response_length: int = field(default=53, metadata={
        "help": "Tokens generated per response (fixed length; the response is then cut after its stop token)."})
    max_prompt_length: int | None = field(default=None, metadata={
        "help": "Longest prompt in tokens (longer ones lose their beginning). Unset: every prompt must fit the "
                "model's context minus --response_length (a longer one is an error)."})
    stop_token: Literal["eos"] | None = field(default=None, metadata={
        "help": "TRL's stop option: 'eos' ends responses at the tokenizer's EOS only. Default (unset): the ids "
                "heal.models.prompting.stop_token_ids names (EOS and the chat template's end-of-turn token)."})
    stop_token_id: int | None = field(default=None, metadata={
        "help": "End responses at this token id only (exclusive with --stop_token)."})
    temperature: float = field(default=0.7, metadata={
        "help": "Sampling temperature; the same temperature divides the logits when log-probabilities are scored."})
    missing_eos_penalty: float | None = field(default=None, metadata={
        "help": "Subtract this from the score of a response that never produced a stop token (positive)."})
    kl_coef: float = field(default=0.05, metadata={
        "help": "β of the per-token KL penalty −β·KL(π‖π_ref) (the initial β with --kl_target)."})
    kl_estimator: Literal["k1", "k3"] = field(default="k1", metadata={
        "help": "Per-token KL estimator: k1 = log π − log π_ref; k3 = (r − 1) − log r, r = π_ref/π (lower "
                "variance, never negative)."})
    kl_target: float | None = field(default=None, metadata={
        "help": "Adaptive KL control (Ziegler et al. 2019; TRL ≤0.11's adap_kl_ctrl/target): β is adjusted so the "
                "summed KL per response tracks this value. Unset: β stays at --kl_coef."})
    kl_horizon: float = field(default=10000, metadata={
        "help": "Adaptive KL control's horizon in rollouts (TRL ≤0.11's horizon): larger = slower changes of β."})
    whiten_rewards: bool = field(default=False, metadata={
        "help": "Scale the per-token rewards to unit variance over the batch (mean kept) before GAE."})
    cliprange: float = field(default=0.2, metadata={"help": "ε of the clipped policy loss (ratio within 1 ± ε)."})
    cliprange_value: float = field(default=0.2, metadata={
        "help": "ε_v of the clipped value loss (new values within ±ε_v of the rollout's)."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss: loss = L_policy + vf_coef·L_V."})
    gamma: float = field(default=1.0, metadata={"help": "Discount factor γ of GAE."})
    lam: float = field(default=0.95, metadata={"help": "λ of GAE."})
    share_backbone: bool = field(default=False, metadata={
        "help": "No separate value model: a zero-initialised value head on the policy's own trunk (older TRL's "
                "ValueHead, OpenRLHF-style). About 1.6x faster per update on heal-tiny (one trunk forward and "
                "backward instead of two), but V no longer starts from the reward model and the value loss also "
                "trains the policy. Off by default (the N+ implementation details' separate value model)."})
    torch_compile: bool = field(default=False, metadata={
        "help": "Run the PPO step's policy and value passes through torch.compile (dynamic shapes; generation and "
                "the reference stay eager). On heal-tiny (CPU) 1.2x faster per update once compiled, after 60-90 s "
                "of compiling (20 s with a warm inductor cache): pays only for runs of a few hundred updates. "
                "--torch_compile_backend/--torch_compile_mode pass on."})
    num_sample_generations: int = field(default=10, metadata={
        "help": "Times during training that sample responses are written to samples.jsonl (0: never)."})
    ds3_gather_for_generation: bool = field(default=True, metadata={
        "help": "TRL's DeepSpeed ZeRO-3 generation switch; accepted so TRL configs load, not used yet (HEAL's PPO is "
                "tested under DDP)."})
    eval_steps: float | None = field(default=None, metadata={
        "help": "With --gold_reward: a monitor point every N PPO updates (below 1: a share of them). Default: "
                "about 10 points over the run."})
    logging_steps: float = field(default=1, metadata={"help": "Log metrics every N PPO updates."})
    save_steps: float = field(default=50, metadata={
        "help": "Write output_dir/checkpoint-N every N PPO updates (--resume_from_checkpoint continues)."})
    report_to: None | str | list[str] = field(default="none", metadata={
        "help": "Also send the metrics to: tensorboard, wandb, mlflow (through accelerate's trackers), or none."})


@dataclass
class PPOModelConfig(ModelConfig):
    """The policy to optimise, and LoRA (applied to the policy and to the value model alike)."""

    model_name_or_path: str | None = field(default=None, metadata={
        "help": "The policy to start from: the SFT model's folder (`heal sft --output_dir`), or any Hub/local causal "
                "LM. It is also the reference model.", "aliases": ["--model_name"]})
    trust_remote_code: bool = field(default=False, metadata={
        "help": "Allow model code from the Hub (policy, value and reward models); only for sources you trust."})


CONFIG_TYPES = (PPOScriptConfig, HealPPOConfig, PPOModelConfig)
