"""The settings the RL verbs share (ppo, grpo): prompts, reward source, output folder. Each verb's config subclasses
RLScriptConfig; the trainer settings stay with each verb."""

from __future__ import annotations

from dataclasses import dataclass, field

from heal.data.schema import TASK_CHOICES, training_task


@dataclass
class RLScriptConfig:
    """Where the prompts and the reward come from, and where the run goes (HEAL's settings of ppo and grpo)."""

    dataset: str = field(default="pubmedqa", metadata={
        "help": "The task (pubmedqa, mimic, aci, safety, other); recorded in the model card.",
        "choices": list(TASK_CHOICES)})
    dataset_path: str | None = field(default=None, metadata={
        "help": "Prompt records (.csv/.jsonl/.parquet with a prompt column, plus label/reference when the reward "
                "needs them); preference files work too (their prompts are used). Default: the dataset_path the "
                "reward model at --reward_model_path was trained on (its resolved_config.yaml)."})
    eval_dataset_path: str | None = field(default=None, metadata={
        "help": "Held-out prompts scored before and after PPO (greedy answers). Default: hold out "
                "--eval_split_size of --dataset_path."})
    eval_split_size: float = field(default=0.1, metadata={
        "help": "Held-out share (<1) or count (>=1) of the prompts for the before/after evaluation; 0 disables it."})
    max_eval_samples: int = field(default=128, metadata={
        "help": "Evaluate on at most this many held-out prompts (greedy generation costs time on a CPU)."})
    max_train_samples: int | None = field(default=None, metadata={
        "help": "Use at most this many training prompts; for quick runs."})
    reward: str | None = field(default=None, metadata={
        "help": "The reward: unset = the reward model at --reward_model_path; judge:<spec> = an AI judge's score "
                "(d-RLAIF; spec as in `heal label --judge`: hf:<path>, openai:<model>, embedding[:<model>], "
                "safety:rules|learned|combined); "
                "rule:pubmedqa = 1 when the answer's yes/no/maybe matches the record's label (verifiable); "
                "rule:refusal = 1 when the answer refuses a harmful request or answers a benign one."})
    gold_reward: str | None = field(default=None, metadata={
        "help": "Over-optimisation monitor (heal.rl.monitor, Gao et al. 2022): a gold measure that is not the training "
                "reward — rule:pubmedqa, rule:refusal, judge:<spec> (or hf:<path>, openai:<model>, embedding, "
                "safety:…), or a reward-model folder. At update 0, every --eval_steps updates and at the end, the held-out prompts' "
                "greedy answers are scored by both rewards and the KL to the reference is measured: monitor/* rows "
                "in metrics.jsonl and overoptimisation.png."})
    keep_best: bool = field(default=False, metadata={
        "help": "Make the final model the monitor's best point by the gold measure (needs --gold_reward); the card "
                "says which update it was, beside the last update's gold score."})
    judge_base_url: str | None = field(default=None, metadata={
        "help": "Base URL of an OpenAI-compatible judge for --reward judge:openai:<model>."})
    constitution: str | None = field(default=None, metadata={
        "help": "Constitution YAML for the judges of --reward and --gold_reward (default: HEAL's, as in `heal label "
                "--constitution`): the principles an LLM judge applies, and the reward of each outcome for the "
                "safety judges (outcome_scores, e.g. benign: {full_refusal: -0.5} to charge a refused benign "
                "request as much as a non-answer)."})
    value_model_path: str | None = field(default=None, metadata={
        "help": "Where the value model starts. Default: the reward model (Huang et al. 2024) when it shares the "
                "policy's tokenizer, else the policy (with a new, zero-initialised value head)."})
    system_prompt: str | None = field(default=None, metadata={
        "help": "System message put before every prompt (as in `heal sft --system_prompt`)."})
    overwrite_output_dir: bool = field(default=False, metadata={
        "help": "Replace a previous HEAL run in --output_dir (a folder holding anything else is never touched)."})
    eval_before_training: bool = field(default=True, metadata={
        "help": "Score the held-out prompts before the first update too, so the card shows the gain."})
    allow_credentialed_data_to_remote_endpoint: bool = field(default=False, metadata={
        "help": "DANGER: let credentialed (MIMIC) records reach a non-loopback judge (PhysioNet DUA forbids it)."})

    def constitution_fingerprint(self) -> dict:
        """The constitution's content digest for a run's fingerprint (nothing when it is HEAL's default); loading
        it here also checks the file before any model loads."""
        if not self.constitution:
            return {}
        from heal.feedback.constitution import load_constitution

        return {"constitution": load_constitution(self.constitution).digest}

    def task(self) -> str:
        return training_task(self.dataset)
