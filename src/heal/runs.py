"""The recipe layer: what every training verb (sft, reward, dpo, grpo, ppo) does the same way, written once.

Each verb's `main` is the same skeleton, and every step that is not specific to its algorithm is a call here:

    plan = runs.plan_output_dir(folder, STAGE, fingerprint, training.resume_from_checkpoint, overwrite)  # 1. check
    …load the data (bad input fails here, before the folder is touched)…                                  # 2. data
    checkpoint = runs.claim(plan)                    # 3. new | resume (metrics.jsonl cut back) | overwrite
    with runs.failure_recorded(folder):              # heal_run.json says `failed` if anything below raises
        …load the model, resolve defaults…                                                                # 4. model
        runs.write_config(folder, *configs)          # 5. resolved_config.yaml (resuming is a flag, not a setting)
        …build the trainer with runs.metrics_callback(folder)…                                        # 6. trainer
        results = runs.train_and_evaluate(trainer, checkpoint)                                            # 7. train
        weights = runs.save_final(trainer, tokenizer, model_args, folder)                                 # 8. save
        runs.publish(folder, card, metrics=…)        # 9. model card, final model moved into place, `complete`

The folder layout and its rules (who owns a folder, staging, checkpoints) are heal.models.run_folder's; this module
decides when each happens. Nothing heavy is imported at module level: the config dataclasses import
CheckpointingDefaults from here.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from heal.errors import HealError
from heal.models import run_folder

# --- defaults every training verb shares ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LearningRates:
    """A verb's default peak learning rates, picked by what is trained (each verb documents its values)."""

    small: float  # heal-tiny, or a policy HEAL built from heal-tiny: small models trained from scratch
    lora: float  # LoRA adapters on a pretrained model
    full: float  # every weight of a pretrained model

    def pick(self, small: bool, use_peft: bool) -> float:
        return self.small if small else self.lora if use_peft else self.full


def multi_process_without_gpu() -> bool:
    """Launched as several processes (torchrun) on a machine with neither CUDA nor MPS."""
    import os

    import torch

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return launched and not torch.cuda.is_available() and not torch.backends.mps.is_available()


def apply_device_defaults(args) -> None:
    """Device defaults of every training verb (on a TrainingArguments before its __post_init__): gloo under
    torchrun without GPUs, bf16 only where the hardware supports it (TRL turns it on by default; on a CPU it is slow
    and lossy for small models; --bf16 true still forces it), no pinned memory without CUDA."""
    import torch

    if multi_process_without_gpu() and not args.use_cpu:
        # Under torchrun on a machine without GPUs, accelerate only sets up gloo for CPU runs that say so.
        args.use_cpu = True
    if args.bf16 is None and not args.fp16:
        args.bf16 = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if not torch.cuda.is_available():
        args.dataloader_pin_memory = False  # nothing to pin to; torch warns on every dataloader otherwise


@dataclass
class CheckpointingDefaults:
    """What `heal reward`, `heal dpo`, `heal grpo` and `heal ppo` share on top of their trainer's config: two kept
    checkpoints, `--resume_from_checkpoint last`, and the device defaults. Listed first among the bases, so these
    defaults win over the trainer config's and its __post_init__ runs after the device defaults."""

    save_total_limit: int | None = field(default=2, metadata={"help": "Keep only the newest N checkpoints."})
    resume_from_checkpoint: str | None = field(default=None, metadata={
        "help": "Continue a run: 'last' for the newest checkpoint in --output_dir, or a checkpoint path."})

    def __post_init__(self):
        apply_device_defaults(self)
        super().__post_init__()


def sharded(training) -> bool:
    """Whether the weights are split across processes (FSDP or DeepSpeed ZeRO-3)."""
    deepspeed = training.deepspeed
    zero3 = bool(deepspeed) and "3" in str(deepspeed if isinstance(deepspeed, str) else
                                           deepspeed.get("zero_optimization", {}).get("stage", ""))
    return bool(training.fsdp) or zero3


# --- the policy a preference or RL verb starts from ------------------------------------------------------------------

def require_policy(name: str | None, stage: str) -> str:
    """The policy a preference/RL stage starts from: given, loadable by name, and not the untrained heal-tiny."""
    from heal.models.loading import model_source

    if not name:
        raise HealError("--model_name is required: the policy to start from (the SFT model's folder, `heal sft "
                        "--output_dir`)")
    if model_source(name) == "heal-tiny":
        raise HealError(f"--model_name heal-tiny: {stage} starts from a trained policy; run `heal sft --model_name "
                        "heal-tiny …` first and pass its --output_dir")
    return name


def load_policy(model_args, training, policy: str):
    """(model, tokenizer, ModelInfo) of the policy a preference/RL verb trains with a TRL trainer; generation stops
    where answers end (heal.models.prompting's stop ids)."""
    from heal.models.loading import load_policy as load
    from heal.models.prompting import stop_token_ids

    kwargs = {"dtype": model_args.dtype} if model_args.dtype else {}
    model, tokenizer, info = load(policy, revision=model_args.model_revision,
                                  trust_remote_code=training.trust_remote_code, **kwargs)
    model.generation_config.eos_token_id = stop_token_ids(tokenizer)
    return model, tokenizer, info


def built_from_heal_tiny(path: str) -> bool:
    """Whether `path` is a HEAL run folder whose model started as heal-tiny (its heal_run.json says so)."""
    folder = Path(path).expanduser()
    run = run_folder.read_run(folder) if folder.is_dir() else None
    return bool(run) and (run.get("fingerprint") or {}).get("model") == "heal-tiny"


# --- the output folder ---------------------------------------------------------------------------------------------

def wants_resume(value) -> bool:
    """--resume_from_checkpoint: unset/false means a fresh run; 'last', 'true' or a path means resume."""
    return str(value or "").lower() not in ("", "false", "none", "no")


@dataclass(frozen=True)
class OutputPlan:
    """What a run will do with its output folder, decided before anything is written (heal.models.run_folder)."""

    folder: Path
    stage: str
    fingerprint: dict
    mode: str  # new | resume | overwrite
    checkpoint: str | None  # the checkpoint-N folder to resume from (mode resume)


def plan_output_dir(folder: str | Path, stage: str, fingerprint: dict, resume_from_checkpoint,
                    overwrite: bool) -> OutputPlan:
    """Check that `folder` may be used and how; raise a HealError and touch nothing if not."""
    folder = Path(folder)
    mode = run_folder.check_output_dir(folder, fingerprint, wants_resume(resume_from_checkpoint), overwrite)
    checkpoint = run_folder.resolve_checkpoint(folder, resume_from_checkpoint) if mode == "resume" else None
    return OutputPlan(folder, stage, fingerprint, mode, checkpoint)


def claim(plan: OutputPlan) -> str | None:
    """Claim the folder (main process; the others wait) and return the checkpoint to resume from, if any.

    On resume, metrics.jsonl is cut back to the checkpoint's step: what was logged after it is logged again."""
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    if state.is_main_process:
        run_folder.claim_output_dir(plan.folder, plan.mode, plan.fingerprint, plan.stage)
        if plan.checkpoint:  # claim_output_dir kept only heal_run.json, metrics.jsonl and the checkpoints
            run_folder.truncate_metrics(plan.folder, checkpoint_step(plan.checkpoint))
    state.wait_for_everyone()
    return plan.checkpoint


def claim_output_dir(folder: str | Path, stage: str, fingerprint: dict, resume_from_checkpoint,
                     overwrite: bool) -> str | None:
    """plan_output_dir + claim, for verbs with nothing to check in between."""
    return claim(plan_output_dir(folder, stage, fingerprint, resume_from_checkpoint, overwrite))


def checkpoint_step(checkpoint: str | None) -> int | None:
    return int(Path(checkpoint).name.rsplit("-", 1)[-1]) if checkpoint else None


def resolved_path(path: str | None) -> str | None:
    """A data path as a fingerprint records it (absolute, so the same file named two ways is the same run)."""
    return str(Path(path).resolve()) if path else None


@contextmanager
def failure_recorded(folder: str | Path) -> Iterator[None]:
    """heal_run.json says `failed` (with the error) when the block raises: the folder holds no final model."""
    from accelerate import PartialState

    try:
        yield
    except BaseException as error:
        if PartialState().is_main_process:
            run_folder.update_run(folder, status="failed", error=f"{type(error).__name__}: {error}"[:500])
        raise


def write_config(folder: str | Path, *configs: Any) -> None:
    """resolved_config.yaml (main process): every setting; rerunning it starts a run (resuming is a flag)."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    config = run_folder.config_dict(*configs)
    if "resume_from_checkpoint" in config:
        config["resume_from_checkpoint"] = None
    run_folder.write_config(folder, config)


# --- training with a TRL trainer -----------------------------------------------------------------------------------

class NoTrlModelCard:
    """Mixin for TRL trainers: HEAL writes its own card once the final model is saved (`publish`); TRL's would land
    in the run folder at every checkpoint and make an unfinished run look finished. List it first among the bases."""

    def create_model_card(self, *args, **kwargs):
        """Nothing: see the class docstring."""


def metrics_callback(folder: str | Path):
    """A TrainerCallback appending every log (train and eval) to <folder>/metrics.jsonl with namespaced keys."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                run_folder.append_metrics(folder, state.global_step, logs)

    return MetricsCallback()


def train_and_evaluate(trainer, checkpoint: str | None) -> dict:
    """Train (resumed from `checkpoint` if given) and return namespaced metrics: eval loss at step 0 (eval_on_start,
    inside train(): an evaluate() called before train() leaves DDP ranks out of sync), train loss, final eval loss."""
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=checkpoint)
    results = {"train/mean_loss": output.training_loss, "train/global_step": output.global_step,
               "train/epochs": output.metrics.get("epoch"), "train/wall_seconds": time.perf_counter() - started}
    if trainer.eval_dataset is None:
        return results
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    if evals and evals[0].get("step") == 0 and checkpoint is None:
        results.update(run_folder.namespaced({f"eval_before_{k[5:]}": v for k, v in evals[0].items()
                                             if k.startswith("eval_")}))
    if evals and evals[-1].get("step") == trainer.state.global_step and trainer.state.global_step > 0:
        after = {k: v for k, v in evals[-1].items() if k.startswith("eval_")}  # the last step was just evaluated
    else:
        after = trainer.evaluate()
    results.update(run_folder.namespaced(after))
    return results


def trainable_checksum(model) -> float:
    """Σ of every trainable weight: equal on every process when DDP kept them in sync."""
    return sum(float(p.detach().double().sum()) for p in model.parameters() if p.requires_grad)


def save_final(trainer, tokenizer, model_args, folder: Path) -> str:
    """Write the final model to the staging folder (all ranks take part: FSDP/ZeRO gather the weights); return a
    description of the weights for the card. LoRA is merged into the base unless --merge_adapter false."""
    state = trainer.accelerator
    staging = Path(folder) / run_folder.STAGING
    if state.is_main_process:
        run_folder.staging_dir(folder)
    state.wait_for_everyone()
    if not model_args.use_peft:
        trainer.save_model(str(staging))
        weights = "full model (all weights fine-tuned)"
    elif not getattr(model_args, "merge_adapter", True):
        trainer.save_model(str(staging))
        weights = f"LoRA adapter only (r={model_args.lora_r}); load it with its base model"
    else:
        _save_merged(trainer, tokenizer, staging)
        weights = f"LoRA (r={model_args.lora_r}, alpha={model_args.lora_alpha}) merged into the base weights"
    state.wait_for_everyone()
    return weights


def _save_merged(trainer, tokenizer, staging: Path) -> None:
    state = trainer.accelerator
    if sharded(trainer.args):  # the adapter is gathered by save_model, then merged on one process
        trainer.save_model(str(staging / "adapter"))
        state.wait_for_everyone()
        if state.is_main_process:
            import shutil

            from heal.models.loading import load_causal_lm

            load_causal_lm(str(staging / "adapter")).save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            shutil.rmtree(staging / "adapter")
        return
    if state.is_main_process:
        peft_model = state.unwrap_model(trainer.model)
        generation = peft_model.get_base_model().generation_config
        merged = peft_model.merge_and_unload()
        merged.generation_config = generation
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


def publish(folder: str | Path, card, **fields: Any) -> dict:
    """Main process: write the model card beside the staged model, move the model into place (weights last) and
    mark the run complete with `fields` (metrics, data counts, …); return heal_run.json."""
    folder = Path(folder)
    card.write(folder / run_folder.STAGING)
    files = run_folder.publish(folder)
    return run_folder.update_run(folder, status="complete", files=files, **fields)


def summary(folder: str | Path) -> dict:
    """What every training verb's main returns (all processes, once the main one has finished): heal_run.json."""
    from accelerate import PartialState

    PartialState().wait_for_everyone()
    return run_folder.read_run(folder) or {}
