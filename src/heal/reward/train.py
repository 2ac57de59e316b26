"""`heal reward`: train a reward model on preference pairs (TRL RewardTrainer, Bradley–Terry loss).

    heal reward --dataset pubmedqa --dataset_path data/processed/pubmedqa.csv \
        --model_name models/policy_model/pubmedqa_sft --output_dir models/reward_model/pubmedqa
    heal reward --dataset_path pairs.jsonl --model_name models/policy_model/pubmedqa_sft --use_peft --lora_r 16 …
    heal reward --dataset pubmedqa --dataset_path data/processed/pubmedqa.csv --judge hf:models/judge \
        --model_name models/policy_model/pubmedqa_sft --output_dir models/reward_model/pubmedqa_rlaif

The backbone is a sequence classifier with one output: the SFT policy (decoder; the N+ implementation details
initialise the reward model from it), any encoder, or heal-tiny. Loss: −log σ(r(chosen) − r(rejected)); metric:
pairwise accuracy on held-out pairs. After training, the mean and std of the reward of the reference answers are
stored in config.json (heal.reward.scoring) so references score mean 0. The output folder has the same layout as an
SFT run (heal.models.run_folder); the model loads with AutoModelForSequenceClassification.
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
from heal.reward.report import summarize
from heal.reward.config import CONFIG_TYPES, LEARNING_RATES, HealRewardConfig, RewardModelConfig, RewardScriptConfig

STAGE = "reward"
NORMALIZATION_SAMPLES = 512  # reference answers scored for the normalisation statistics
MIN_STD = 1e-3  # a reward model whose answers all score within this spread gets no rescaling (std 1)


CONTRACT = VerbContract(output="folder", inputs=("dataset_path", "eval_dataset_path", "resume_from_checkpoint"),
                        models=("model_name_or_path",), overwrite_field="overwrite_output_dir", summarize=summarize)


def make_parser():
    return _make_parser("heal reward", __doc__.split("\n")[0], *CONFIG_TYPES)


def main(script: RewardScriptConfig, training: HealRewardConfig, model_args: RewardModelConfig,
         tiny: TinyConfig | None = None) -> dict:
    from accelerate import PartialState

    from heal.reward.data import load_pairs

    tiny = tiny or TinyConfig()
    folder = Path(training.output_dir)
    # 1. Check the request and the output folder before anything heavy.
    source = _check_model(model_args, tiny)
    policy = script.policy_name or (model_args.model_name_or_path if source != "heal-tiny" else None)
    fingerprint = {"stage": STAGE, "model": model_args.model_name_or_path, "dataset": script.task(),
                   "dataset_path": runs.resolved_path(script.dataset_path), "judge": script.judge,
                   "use_peft": model_args.use_peft}
    plan = runs.plan_output_dir(folder, STAGE, fingerprint, training.resume_from_checkpoint,
                                script.overwrite_output_dir)
    # 2. Data: bad pairs are reported before the output folder is touched (AI-labelled pairs are made in it).
    if not script.judge:
        train_pairs, eval_pairs, provenance = load_pairs(script, policy, folder)
    # 3. Claim the folder: new, resumed (metrics.jsonl cut back to the checkpoint) or overwritten.
    checkpoint = runs.claim(plan)
    with runs.failure_recorded(folder):
        if script.judge:  # AI labelling keeps its pairs in the run folder
            train_pairs, eval_pairs, provenance = load_pairs(script, policy, folder)
        # 4. Model, and the defaults that depend on it.
        model, tokenizer = _load_backbone(model_args, training, tiny, source, train_pairs, checkpoint)
        _resolve_defaults(training, model_args, source, model, bool(eval_pairs))
        # 5. Resolved config; 6. trainer; 7. train and evaluate (eval_on_start: accuracy before, then after).
        runs.write_config(folder, script, training, model_args, *([tiny] if source == "heal-tiny" else []))
        trainer = _build_trainer(model, tokenizer, training, model_args, train_pairs, eval_pairs)
        used = _pairs_used(trainer)
        results = runs.train_and_evaluate(trainer, checkpoint)
        # 8. Final model (LoRA merged), normalised on the reference answers; 9. card, publish.
        final = _final_model(trainer, model_args)
        stats = _normalize(final, tokenizer, train_pairs, script.normalize_rewards)
        if PartialState().is_main_process:
            staging = run_folder.staging_dir(folder)
            final.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            run = _finish(folder, script, training, model_args, source, train_pairs, eval_pairs, provenance,
                          results, stats, checkpoint, used)
            _print_summary(run, folder)
    return runs.summary(folder)


def _check_model(model_args: RewardModelConfig, tiny: TinyConfig) -> str:
    from heal.models.loading import model_source

    source = model_source(model_args.model_name_or_path or "")
    if model_args.load_in_4bit or model_args.load_in_8bit:
        import torch

        if not torch.cuda.is_available():
            raise HealError("--load_in_4bit/--load_in_8bit need a CUDA GPU and bitsandbytes; on a CPU use --use_peft")
    if source == "heal-tiny":
        tiny.check()
    if source == "local":
        folder = Path(model_args.model_name_or_path).expanduser()
        if not (folder / "config.json").exists():
            raise HealError(f"--model_name {folder}: holds a LoRA adapter without its base; rerun `heal sft` with "
                            "--merge_adapter true (the default) to get a full model to start the reward model from")
    return source


def _load_backbone(model_args, training, tiny: TinyConfig, source: str, pairs: list[dict], checkpoint: str | None):
    """(sequence classifier with one output, tokenizer); pad token set so the head finds the last real token."""
    from transformers import AutoModelForSequenceClassification

    if source == "heal-tiny":
        import torch
        from transformers import LlamaForSequenceClassification

        from heal.models.tiny import build_model, train_tokenizer

        if checkpoint:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        else:
            texts = [t for p in pairs for t in (p["prompt"], p["chosen"], p["rejected"])]
            tokenizer = train_tokenizer(texts, tiny.tiny_vocab_size, tiny.tiny_min_frequency)
        config = build_model(tokenizer, tiny, training.seed).config
        config.num_labels = 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(training.seed)
            model = LlamaForSequenceClassification(config)
    else:
        from heal.models.loading import load_tokenizer, model_location

        tokenizer = load_tokenizer(model_args.model_name_or_path, model_args.model_revision)
        if tokenizer.eos_token is None:  # encoders (BERT, MiniLM): TRL ends every answer with eos; [SEP] ends theirs
            tokenizer.eos_token = tokenizer.sep_token or tokenizer.pad_token
        import torch

        try:
            # the new scalar head is drawn from torch's generator: seeded here, the same --seed gives the same reward
            # model (the Trainer seeds only after the model exists)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(training.seed)
                model = AutoModelForSequenceClassification.from_pretrained(
                    model_location(model_args.model_name_or_path), num_labels=1, revision=model_args.model_revision,
                    trust_remote_code=training.trust_remote_code, dtype=model_args.dtype or "auto")
        except (OSError, ValueError) as e:
            raise HealError(f"--model_name {model_args.model_name_or_path}: cannot be loaded as a sequence "
                            f"classifier ({str(e).splitlines()[0][:200]})") from None
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _resolve_defaults(training: HealRewardConfig, model_args, source: str, model, has_eval: bool) -> None:
    from transformers.trainer_utils import IntervalStrategy

    if training.learning_rate is None:
        training.learning_rate = LEARNING_RATES.pick(source == "heal-tiny", model_args.use_peft)
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and training.max_length and training.max_length > limit:
        training.max_length = limit
    if not has_eval:
        training.eval_strategy = IntervalStrategy.NO
        training.do_eval = False
    else:  # pairwise accuracy at step 0, inside train(): an evaluate() before train() desyncs DDP ranks
        training.eval_on_start = True


def _dataset(tokenizer, pairs: list[dict], max_length: int | None = None):
    """TRL's prompt/chosen/rejected texts, or, given `max_length`, its token ids with every pair cut to fit."""
    from datasets import Dataset

    from heal.models.prompting import format_completion, format_prompt

    texts = [{"prompt": format_prompt(tokenizer, p["prompt"]),
              "chosen": format_completion(tokenizer, p["prompt"], p["chosen"]),
              "rejected": format_completion(tokenizer, p["prompt"], p["rejected"])} for p in pairs]
    if max_length is None:
        return Dataset.from_list(texts)
    return Dataset.from_list([_pair_ids(tokenizer, t, max_length) for t in texts])


def _pair_ids(tokenizer, texts: dict, max_length: int) -> dict:
    """Token ids of prompt + chosen and prompt + rejected as TRL makes them (the text, an end-of-sequence token if
    missing, the tokenizer's special tokens), cut from the left to `max_length` as heal.reward.scoring reads text: a
    pair that fits is unchanged; a longer one loses the start of the conversation, and its answers only when one alone
    is longer than that. `truncated` says whether it was cut."""
    from heal.reward.scoring import reading_the_end

    eos = tokenizer.eos_token or ""
    out = {"truncated": False}
    with reading_the_end(tokenizer):
        for key in ("chosen", "rejected"):
            text = texts["prompt"] + texts[key]
            text = text if text.endswith(eos) else text + eos
            full = tokenizer(text=text)["input_ids"]
            out[f"{key}_ids"] = full if len(full) <= max_length else \
                tokenizer(text=text, truncation=True, max_length=max_length)["input_ids"]
            out["truncated"] |= len(full) > max_length
    return out


def _build_trainer(model, tokenizer, training, model_args, train_pairs, eval_pairs):
    from trl import RewardTrainer, get_peft_config

    by_length = training.train_sampling_strategy in ("group_by_length", "batch_rebalance")

    class HealRewardTrainer(runs.NoTrlModelCard, RewardTrainer):
        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if by_length:  # keep the length column for the sampler (TRL's collator reads only the ids)
                self._signature_columns = [*self._signature_columns, self.args.length_column_name]

    peft_config = get_peft_config(model_args)
    if peft_config is not None:
        peft_config.modules_to_save = list(peft_config.modules_to_save or []) + ["score"]  # the head always trains
    cut_to = training.max_length if training.keep_long_pairs else None
    trainer = HealRewardTrainer(model=model, args=training, processing_class=tokenizer,
                                train_dataset=_dataset(tokenizer, train_pairs, cut_to),
                                eval_dataset=_dataset(tokenizer, eval_pairs, cut_to) if eval_pairs else None,
                                peft_config=peft_config, callbacks=[runs.metrics_callback(training.output_dir)])
    if by_length:
        # transformers' length-grouped samplers (training and evaluation) read a length per example; a pair's batch
        # is padded to its longer answer, so that is its length. On HH-RLHF (mean 153 MiniLM tokens, a long tail)
        # random batches of 16 pairs are 53% real tokens; grouped by length, most of the padding goes.
        def with_length(dataset):
            return dataset.map(lambda pair: {
                training.length_column_name: max(len(pair["chosen_ids"]), len(pair["rejected_ids"]))})

        trainer.train_dataset = with_length(trainer.train_dataset)
        if trainer.eval_dataset is not None:  # one dataset or none: _build_trainer never passes a dict of them
            trainer.eval_dataset = with_length(trainer.eval_dataset)
    return trainer


def _pairs_used(trainer) -> dict:
    """How many training and held-out pairs were used (TRL leaves out pairs longer than --max_length unless
    --keep_long_pairs cut them to fit) and how many were cut."""
    counts = {}
    for name, dataset in (("trained", trainer.train_dataset), ("evaluated", trainer.eval_dataset)):
        counts[f"{name}_pairs"] = len(dataset) if dataset is not None else 0
        cut = dataset is not None and "truncated" in dataset.column_names
        counts[f"{name}_truncated"] = sum(dataset["truncated"]) if cut else 0
    return counts


def _final_model(trainer, model_args):
    model = trainer.accelerator.unwrap_model(trainer.model)
    if model_args.use_peft:
        model = model.merge_and_unload()  # a plain sequence classifier: loads without PEFT
    return model


def _normalize(model, tokenizer, pairs: list[dict], enabled: bool) -> dict:
    """Reward mean/std over the reference answers (the chosen answers when the pairs carry no reference), the std
    floored by the spread of all answers (normalization_stats)."""
    from heal.reward.scoring import NORMALIZATION_KEY, pair_texts, raw_scores

    if not enabled:
        return {}
    sample = pairs[:NORMALIZATION_SAMPLES]
    with_reference = [p for p in sample if p.get("reference")]
    answers = [p["reference"] for p in with_reference] if with_reference else [p["chosen"] for p in sample]
    prompts = [p["prompt"] for p in (with_reference or sample)]
    scores = raw_scores(model, tokenizer, pair_texts(tokenizer, prompts, answers))
    rejected = raw_scores(model, tokenizer, pair_texts(tokenizer, [p["prompt"] for p in sample],
                                                       [p["rejected"] for p in sample]))
    stats = normalization_stats(scores, rejected)
    stats["measured_on"] = (f"{len(scores)} {'reference' if with_reference else 'chosen'} answers "
                            f"(std floor: {len(scores) + len(rejected)} answers, rejected ones included)")
    setattr(model.config, NORMALIZATION_KEY, stats)
    return stats


def normalization_stats(reference: list[float], rejected: list[float]) -> dict:
    """{"mean", "std", "std_reference", "std_all"} of raw rewards: references are centred on 0 and scaled by

        std = max(σ(references), σ(references ∪ rejected answers))     (1.0 if even that is below MIN_STD)

    σ(references) alone can be tiny — a reward model that scores every gold answer alike — and dividing by it
    turned small score differences into PPO rewards of ±70. The pooled σ includes the gap between good and bad
    answers (σ² ≈ (σ_ref² + σ_rej²)/2 + gap²/4 for equal counts), so a typical rejected answer scores −2 at most."""
    import statistics

    std_reference = statistics.pstdev(reference) if len(reference) > 1 else 0.0
    pooled = list(reference) + list(rejected)
    std_all = statistics.pstdev(pooled) if len(pooled) > 1 else 0.0
    std = max(std_reference, std_all)
    return {"mean": statistics.fmean(reference), "std": std if std >= MIN_STD else 1.0,
            "std_reference": std_reference, "std_all": std_all}


def _finish(folder: Path, script, training, model_args, source, train_pairs, eval_pairs, provenance, results,
            stats, checkpoint, used: dict) -> dict:
    from heal.reward.report import model_card

    run_folder.plot_loss_curve(folder, f"{folder.name}: reward model on {script.task()}")
    keys = ("eval_before/accuracy", "eval/accuracy", "eval_before/margin", "eval/margin", "eval/loss",
            "train/mean_loss", "train/global_step", "train/wall_seconds")
    metrics = {k: results[k] for k in keys if results.get(k) is not None}
    if stats:
        metrics.update({"reward/reference_mean_raw": stats["mean"], "reward/reference_std_raw": stats["std"]})
    card = model_card(folder, script, training, model_args, source, train_pairs, eval_pairs, provenance, metrics,
                      stats)
    return runs.publish(folder, card, metrics=metrics, pairs=provenance, credentialed=card.credentialed,
                        normalization=stats, resumed_from_step=runs.checkpoint_step(checkpoint),
                        data={"train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs), **used})


def _print_summary(run: dict, folder: Path) -> None:
    m = run.get("metrics", {})
    acc = ""
    if "eval/accuracy" in m:
        before = f"{m['eval_before/accuracy']:.1%} → " if "eval_before/accuracy" in m else ""
        acc = f"; held-out pairwise accuracy {before}{m['eval/accuracy']:.1%}"
    data = run["data"]
    left_out = ""
    if data["trained_pairs"] < data["train_pairs"] or data["evaluated_pairs"] < data["eval_pairs"]:
        left_out = (f"; TRL left out pairs longer than --max_length: trained on {data['trained_pairs']}, "
                    f"accuracy on {data['evaluated_pairs']} of {data['eval_pairs']} held-out")
    if data["trained_truncated"] or data["evaluated_truncated"]:
        left_out += (f"; {data['trained_truncated']} training and {data['evaluated_truncated']} held-out pairs were "
                     "longer than --max_length and cut from the left to fit")
    print(f"heal reward: {data['train_pairs']} training pairs ({run['pairs']}){acc}{left_out}\n"
          f"  reward model → {folder} (AutoModelForSequenceClassification; normalised with "
          f"{run.get('normalization', {}).get('measured_on', 'no statistics')})")


if __name__ == "__main__":
    from heal.cli import run

    sys.exit(run(["reward", *sys.argv[1:]]))
