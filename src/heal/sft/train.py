"""`heal sft`: supervised fine-tuning of a policy on prompt/completion records (TRL SFTTrainer).

    heal sft --dataset pubmedqa --dataset_path data/processed/pubmedqa.csv --model_name heal-tiny \
        --output_dir models/policy_model/pubmedqa_sft
    heal sft --config experiments/configs/sft_tiny_cpu.yaml --dataset_path data/processed/pubmedqa.csv
    heal sft --model_name Qwen/Qwen2.5-0.5B-Instruct --use_peft --lora_r 16 --dataset_path … --output_dir …
    torchrun --nproc_per_node 2 -m heal.cli sft …      # two CPU processes (gloo); GPUs: accelerate launch, see docs

The loss is on completion tokens only (TRL's prompt-completion format); prompts are formatted by
heal.models.prompting, exactly as reward, ppo and eval format them. The output folder layout (final model, model card,
resolved config, metrics.jsonl, loss_curve.png, checkpoints) is described in heal.models.run_folder; docs/sft.md
has the full guide.
"""

from __future__ import annotations

import sys
from pathlib import Path

from heal import runs
from heal.config import make_parser as _make_parser
from heal.contracts import VerbContract
from heal.errors import HealError
from heal.models import run_folder
from heal.models.tiny import TinyConfig
from heal.sft.report import summarize
from heal.sft.config import (CONFIG_TYPES, LEARNING_RATES, TASK_MAX_LENGTH, HealModelConfig, HealSFTConfig,
                             SFTScriptConfig)

STAGE = "sft"


CONTRACT = VerbContract(output="folder", inputs=("dataset_path", "eval_dataset_path", "resume_from_checkpoint"),
                        models=("model_name_or_path",), overwrite_field="overwrite_output_dir", summarize=summarize)


def make_parser():
    return _make_parser("heal sft", __doc__.split("\n")[0], *CONFIG_TYPES)


def main(script: SFTScriptConfig, training: HealSFTConfig, model_args: HealModelConfig,
         tiny: TinyConfig | None = None) -> dict:
    """Train, evaluate and save; return the run summary (also in <output_dir>/heal_run.json)."""
    from accelerate import PartialState

    tiny = tiny or TinyConfig()
    folder = Path(training.output_dir)
    # 1. Check the request and the output folder before anything heavy.
    source = _check_model_request(model_args, training, tiny)
    plan = runs.plan_output_dir(folder, STAGE, _fingerprint(script, model_args, tiny, training.seed),
                                training.resume_from_checkpoint, script.overwrite_output_dir)
    # 2. Data.
    train_records, eval_records = _load_data(script, training.seed)
    if training.push_to_hub and _credentialed(script, train_records):
        raise HealError(f"{script.dataset_path}: credentialed data (MIMIC) must not leave this machine; drop "
                        "--push_to_hub (PhysioNet data use agreement)")
    # 3. Claim the folder: new, resumed (metrics.jsonl cut back to the checkpoint) or overwritten.
    checkpoint = runs.claim(plan)
    with runs.failure_recorded(folder):
        # 4. Model, and the defaults that depend on it.
        model, tokenizer, info = _load_policy(model_args, training, tiny, source, train_records, checkpoint)
        _resolve_defaults(training, model_args, source, script.task(), model, bool(eval_records))
        training.eval_on_start = training.eval_on_start or bool(eval_records and script.eval_before_training
                                                                and checkpoint is None)
        # 5. Resolved config; 6. trainer; 7. train and evaluate; 8. final model; 9. card, publish.
        runs.write_config(folder, script, training, model_args, *([tiny] if source == "heal-tiny" else []))
        trainer = _build_trainer(model, tokenizer, training, model_args, script, train_records, eval_records)
        results = runs.train_and_evaluate(trainer, checkpoint)
        ranks = _rank_stats(trainer)
        weights = runs.save_final(trainer, tokenizer, model_args, folder)
        if PartialState().is_main_process:
            summary = _finish(folder, script, training, model_args, info, train_records, eval_records, results,
                              weights, ranks, checkpoint)
            _print_summary(summary, folder)
    return runs.summary(folder)


# --- checks before anything heavy ----------------------------------------------------------------------------------

def _check_model_request(model_args: HealModelConfig, training: HealSFTConfig, tiny: TinyConfig) -> str:
    """Fail fast on requests that cannot work: API models, missing folders, QLoRA without a GPU, …"""
    from heal.models.loading import model_source

    source = model_source(model_args.model_name_or_path or "")
    quantized = model_args.load_in_4bit or model_args.load_in_8bit
    if quantized:
        _check_qlora(model_args, source)
    if source == "heal-tiny":
        tiny.check()
        if model_args.use_peft and not model_args.merge_adapter:
            raise HealError("--merge_adapter false: an adapter needs a base model others can load, and heal-tiny "
                            "is built inside the run; keep --merge_adapter true (the default)")
    if model_args.use_peft and model_args.merge_adapter and runs.sharded(training) and source == "heal-tiny":
        raise HealError("LoRA on heal-tiny under FSDP/ZeRO-3 is not supported; use DDP or full fine-tuning")
    if not model_args.use_peft and (model_args.lora_target_modules or model_args.use_dora):
        raise HealError("--lora_target_modules/--use_dora need --use_peft (LoRA); add it or drop them")
    return source


def _check_qlora(model_args: HealModelConfig, source: str) -> None:
    import importlib.util

    import torch

    flag = "--load_in_4bit" if model_args.load_in_4bit else "--load_in_8bit"
    if not torch.cuda.is_available():
        raise HealError(f"{flag} (QLoRA) needs a CUDA GPU and bitsandbytes, and this machine has no GPU; on a CPU "
                        "use --use_peft (LoRA) without it")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise HealError(f"{flag} (QLoRA) needs bitsandbytes: pip install 'heal[gpu]' (or pip install bitsandbytes)")
    if not model_args.use_peft:
        raise HealError(f"{flag} trains LoRA adapters on a frozen quantized base; add --use_peft")
    if source == "heal-tiny":
        raise HealError(f"{flag}: heal-tiny is built in memory and is not quantized; use a Hub or local model")


def _load_data(script: SFTScriptConfig, seed: int) -> tuple[list[dict], list[dict]]:
    from heal.data.splits import split_eval
    from heal.sft.data import load_sft_records

    task = script.task()
    records = load_sft_records(script.dataset_path, task)
    if script.eval_dataset_path:
        train, held = records, load_sft_records(script.eval_dataset_path, task, "--eval_dataset_path")
    else:
        train, held = split_eval(records, script.eval_split_size, seed)
    if script.max_train_samples is not None:
        if script.max_train_samples < 1:
            raise HealError(f"--max_train_samples {script.max_train_samples}: must be at least 1")
        train = train[:script.max_train_samples]
    return train, held


def _credentialed(script: SFTScriptConfig, records: list[dict]) -> bool:
    from heal.sft.data import credentialed

    return credentialed(records, script.dataset_path)


def _fingerprint(script: SFTScriptConfig, model_args: HealModelConfig, tiny: TinyConfig, seed: int) -> dict:
    """What makes two runs the same run (hyperparameters such as max_steps may change on resume)."""
    import dataclasses

    fingerprint = {
        "stage": STAGE, "model": model_args.model_name_or_path, "dataset": script.task(),
        "dataset_path": runs.resolved_path(script.dataset_path),
        "eval_dataset_path": runs.resolved_path(script.eval_dataset_path), "use_peft": model_args.use_peft,
    }
    if model_args.model_name_or_path == "heal-tiny":
        fingerprint.update(seed=seed, **dataclasses.asdict(tiny))
    return fingerprint


# --- model and defaults --------------------------------------------------------------------------------------------

def _load_policy(model_args: HealModelConfig, training: HealSFTConfig, tiny: TinyConfig, source: str,
                 train_records: list[dict], checkpoint: str | None):
    from heal.models.loading import ModelInfo, load_policy

    if source == "heal-tiny":
        from heal.models.tiny import build_model

        tokenizer = _tiny_tokenizer(train_records, tiny, checkpoint)
        return build_model(tokenizer, tiny, training.seed), tokenizer, ModelInfo("heal-tiny", "heal-tiny")
    from trl import get_quantization_config

    kwargs = dict(training.model_init_kwargs or {})
    kwargs.setdefault("dtype", model_args.dtype)
    if model_args.attn_implementation:
        kwargs.setdefault("attn_implementation", model_args.attn_implementation)
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        from accelerate import PartialState

        kwargs.update(quantization_config=quantization, device_map={"": PartialState().local_process_index})
    return load_policy(model_args.model_name_or_path, revision=model_args.model_revision,
                       trust_remote_code=training.trust_remote_code, **kwargs)


def _tiny_tokenizer(train_records: list[dict], tiny: TinyConfig, checkpoint: str | None):
    """heal-tiny's tokenizer: trained on the training split's prompts and completions (once, on the main process,
    and shared with the other ranks), or, on resume, the one saved in the checkpoint."""
    from accelerate import PartialState

    from heal.models.tiny import train_tokenizer, wrap_tokenizer

    if checkpoint:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(checkpoint)
    state = PartialState()
    texts = [t for r in train_records for t in (r["prompt"], r["completion"])]
    if state.num_processes == 1:
        return train_tokenizer(texts, tiny.tiny_vocab_size, tiny.tiny_min_frequency)
    import torch.distributed as dist

    shared = [None]
    if state.is_main_process:
        shared = [train_tokenizer(texts, tiny.tiny_vocab_size, tiny.tiny_min_frequency).backend_tokenizer.to_str()]
    dist.broadcast_object_list(shared, src=0)
    return wrap_tokenizer(shared[0])


def _resolve_defaults(training: HealSFTConfig, model_args: HealModelConfig, source: str, task: str, model,
                      has_eval: bool) -> None:
    """Fill the settings whose default depends on the model or the data (each choice is in --help)."""
    from transformers.trainer_utils import IntervalStrategy

    if training.learning_rate is None:
        training.learning_rate = LEARNING_RATES.pick(source == "heal-tiny", model_args.use_peft)
    limit = getattr(model.config, "max_position_embeddings", None)
    if training.max_length is None:
        training.max_length = min(TASK_MAX_LENGTH[task], limit or TASK_MAX_LENGTH[task])
    elif limit and training.max_length > limit:
        raise HealError(f"--max_length {training.max_length} exceeds the model's max_position_embeddings {limit}; "
                        f"lower it (heal-tiny: or raise --tiny_max_position_embeddings)")
    if not has_eval:
        if training.load_best_model_at_end:
            raise HealError("--load_best_model_at_end needs eval data; set --eval_split_size or --eval_dataset_path")
        training.eval_strategy = IntervalStrategy.NO
        training.do_eval = False


# --- training ------------------------------------------------------------------------------------------------------

def _build_trainer(model, tokenizer, training, model_args, script, train_records, eval_records):
    from datasets import Dataset
    from trl import get_peft_config

    from heal.models.prompting import format_example, stop_token_ids
    from heal.sft.trainer import HealSFTTrainer

    def to_dataset(records: list[dict]):
        rows = [format_example(tokenizer, r["prompt"], r["completion"], script.system_prompt) for r in records]
        return Dataset.from_list(rows)

    model.generation_config.eos_token_id = stop_token_ids(tokenizer)  # generation stops where training ends
    return HealSFTTrainer(
        model=model, args=training, processing_class=tokenizer,
        train_dataset=to_dataset(train_records), eval_dataset=to_dataset(eval_records) if eval_records else None,
        peft_config=get_peft_config(model_args), callbacks=[runs.metrics_callback(folder=training.output_dir)],
    )


def _rank_stats(trainer) -> list[dict]:
    """Every rank's own count of what it trained on (gathered: each process must call this)."""
    from accelerate.utils import gather_object

    model = trainer.accelerator.unwrap_model(trainer.model)
    # Under DDP every rank holds the same weights after each step: equal checksums show the ranks stayed in sync.
    stats = dict(trainer.rank_stats, rank=trainer.accelerator.process_index,
                 trainable_checksum=runs.trainable_checksum(model))
    return gather_object([stats])


# --- finishing -----------------------------------------------------------------------------------------------------

def _finish(folder: Path, script, training, model_args, info, train_records, eval_records, results: dict,
            weights: str, ranks: list[dict], checkpoint: str | None) -> dict:
    from heal.sft.report import metrics_summary, model_card

    title = f"{folder.name}: {info.name} fine-tuned on {script.task()}"
    run_folder.plot_loss_curve(folder, title)
    metrics = metrics_summary(results, training, ranks)
    credentialed = _credentialed(script, train_records)
    card = model_card(folder, script, training, model_args, info, train_records, eval_records, metrics, weights,
                      credentialed)
    return runs.publish(
        folder, card, weights=weights, metrics=metrics, credentialed=credentialed,
        resumed_from_step=runs.checkpoint_step(checkpoint),
        distributed={"world_size": training.world_size, "ranks": ranks},
        data={"train_records": len(train_records), "eval_records": len(eval_records)},
    )


def _print_summary(run: dict, folder: Path) -> None:
    m = run.get("metrics", {})
    loss = ""
    if "eval/loss" in m:
        before = f"{m['eval_before/loss']:.3f} → " if "eval_before/loss" in m else ""
        loss = f"; eval loss {before}{m['eval/loss']:.3f}"
    print(f"heal sft: {run['data']['train_records']} training records, {m.get('train/global_step', '?')} steps"
          f"{loss}\n  model ({run['weights']}) → {folder}\n  model card, resolved_config.yaml, metrics.jsonl, "
          f"loss_curve.png beside it")


if __name__ == "__main__":
    from heal.cli import run

    sys.exit(run(["sft", *sys.argv[1:]]))
