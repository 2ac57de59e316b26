"""Settings of `heal eval` (and the generation settings `heal redteam` shares): the model and how it generates, then the task.

Every field's help text is its `--help`; `--config experiments/configs/eval_pubmedqa.yaml` supplies values and flags
override them. The run's resolved values are saved as resolved_config.yaml in its output folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from heal.errors import HealError

EVAL_TASKS = ("auto", "pubmedqa", "mimic", "mimic_bhc", "mimic_di", "aci", "aci_bench")
PUBMEDQA_MODES = ("generate", "loglikelihood")


@dataclass
class GenerationArgs:
    """The model under test and how it generates."""

    model_path: str | None = field(default=None, metadata={
        "help": "Model to evaluate: a folder a HEAL stage wrote, a Hub id, or heal-tiny (built here, untrained: "
                "a chance-level baseline)."})
    backend: Literal["auto", "hf", "vllm"] = field(default="auto", metadata={
        "help": "Generation engine: vllm when installed and a GPU is present (auto), or transformers (hf)."})
    batch_size: int = field(default=16, metadata={"help": "Prompts per generation batch (hf backend)."})
    max_new_tokens: int | None = field(default=None, metadata={
        "help": "Longest answer, in tokens (default: 64 for PubMedQA, 256 for summaries, 128 for redteam)."})
    temperature: float = field(default=0.0, metadata={
        "help": "Sampling temperature; 0 = greedy decoding (deterministic, the default for evaluation)."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (only with --temperature > 0)."})
    system_prompt: str | None = field(default=None, metadata={
        "help": "System message for every prompt (default: the one the model was trained with, read from the "
                "resolved_config.yaml in its folder, if any)."})
    seed: int = field(default=0, metadata={"help": "Seed for sampling, perturbations, attacks and heal-tiny."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})

    def check(self) -> None:
        if self.batch_size < 1:
            raise HealError(f"--batch_size {self.batch_size}: must be at least 1")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise HealError(f"--max_new_tokens {self.max_new_tokens}: must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise HealError("--temperature must be >= 0 and --top_p in (0, 1]")


@dataclass
class EvalConfig:
    """What to evaluate on and where the results go."""

    dataset_path: str | None = field(default=None, metadata={
        "help": "Processed records from `heal prep` (.csv, .jsonl, .parquet): PubMedQA (prompt, label, and question "
                "+ context for --robustness) or summaries (prompt, reference)."})
    dataset: Literal[EVAL_TASKS] = field(default="auto", metadata={
        "help": "Task: pubmedqa, mimic (BHC/DI summaries), aci (ACI-Bench notes), or auto (from the task column)."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Results folder (default: experiments/results/<run_name>)."})
    run_name: str | None = field(default=None, metadata={
        "help": "Name of the results folder under experiments/results (default: eval-<model>-<data>)."})
    max_samples: int | None = field(default=None, metadata={"help": "Evaluate only the first N records."})
    pubmedqa_modes: str = field(default="generate,loglikelihood", metadata={
        "help": "PubMedQA scoring: generate (answer parsed from generated text), loglikelihood (most likely of "
                "Yes./No./Maybe. after the prompt), or both, comma-separated."})
    robustness: bool = field(default=False, metadata={
        "help": "PubMedQA: also measure accuracy and answer consistency under answer-preserving perturbations."})
    robustness_mode: Literal[PUBMEDQA_MODES] = field(default="loglikelihood", metadata={
        "help": "Scoring used for --robustness (loglikelihood: one forward pass per item, the cheaper)."})
    perturbations: str = field(default="typos,casing,distractor,shuffle_context,paraphrase", metadata={
        "help": "Which perturbations --robustness applies, comma-separated."})
    embedding_model: str | None = field(default=None, metadata={
        "help": "Summaries: a local model folder for embedding similarity between prediction and reference."})
    bertscore_model: str | None = field(default=None, metadata={
        "help": "Summaries: a local model folder for BERTScore (F1 of greedy-matched token embeddings)."})
    bertscore_layer: int | None = field(default=None, metadata={
        "help": "Hidden layer BERTScore reads (default: two thirds of the way up the model)."})

    def modes(self) -> list[str]:
        modes = [m.strip() for m in self.pubmedqa_modes.split(",") if m.strip()]
        unknown = [m for m in modes if m not in PUBMEDQA_MODES]
        if unknown or not modes:
            raise HealError(f"--pubmedqa_modes {self.pubmedqa_modes}: choose from {', '.join(PUBMEDQA_MODES)}")
        return list(dict.fromkeys(modes))

    def perturbation_names(self) -> list[str]:
        from heal.eval.robustness import PERTURBATIONS

        names = [p.strip() for p in self.perturbations.split(",") if p.strip()]
        unknown = [p for p in names if p not in PERTURBATIONS]
        if unknown or not names:
            raise HealError(f"--perturbations: unknown {', '.join(unknown) or '(none given)'}; choose from "
                            f"{', '.join(PERTURBATIONS)}")
        return names
