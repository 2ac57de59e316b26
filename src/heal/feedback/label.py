"""`heal label`: RLAIF preference labelling, and judge–human agreement.

    # sample 2 answers per prompt from the policy and let a judge pick the better one
    heal label --model_name models/policy_model/pubmedqa_sft --dataset_path data/processed/pubmedqa.jsonl \
        --judge hf:models/judge --output_path data/processed/pubmedqa_rlaif_pairs.jsonl

    # how often does the judge agree with human labels, and how often does the order flip its verdict?
    heal label --agreement ../shared/data/preferences/hh_rlhf_harmless_base_test_medical_subset.jsonl \
        --judge openai:qwen2.5-7b-instruct --judge_base_url http://localhost:8000/v1 --output_path agreement.json

Judgments are cached on disk (`--judge_cache`), so a rerun, or a run resumed after a crash, makes no new judge call
for a pair it already judged; the sampled candidates are kept beside the output until the run completes, so a
resumed run judges exactly the same pairs. Records from credentialed data (MIMIC) are refused by network judges
that are not on loopback (the PHI guard).
"""

from __future__ import annotations

import itertools
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

from heal.config import make_parser as _make_parser
from heal.config import to_dict
from heal.contracts import VerbContract, records_file_summary
from heal.data import io
from heal.errors import HealError


@dataclass
class LabelConfig:
    judge: str = field(metadata={"help": "Judge: hf:<model path>, openai:<model>, embedding[:<model>], "
                                         "rule:pubmedqa, rule:refusal or safety:rules|learned|combined (the "
                                         "four-outcome safety grader)."})
    output_path: str = field(metadata={"help": "Pairs file (.jsonl/.csv/.parquet); with --agreement, a .json report."})
    model_name: str | None = field(default=None, metadata={"help": "Policy that writes the candidate answers."})
    dataset_path: str | None = field(default=None, metadata={"help": "Prompt records (prompt, and reference/label "
                                                                     "when the judge needs them)."})
    agreement: str | None = field(default=None, metadata={
        "help": "Human-labelled pairs (prompt/chosen/rejected, chosen = preferred): report judge agreement and the "
                "position-bias rate instead of labelling."})
    num_candidates: int = field(default=2, metadata={"help": "Answers sampled per prompt."})
    pairs_per_prompt: int = field(default=1, metadata={"help": "Pairs judged per prompt (of the K·(K−1)/2)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature for the candidates."})
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling for the candidates."})
    max_new_tokens: int = field(default=128, metadata={"help": "Longest candidate answer, in tokens."})
    batch_size: int = field(default=16, metadata={"help": "Generation batch size."})
    max_prompts: int | None = field(default=None, metadata={"help": "Use only the first N prompts."})
    seed: int = field(default=0, metadata={"help": "Seed for sampling and pairing."})
    judge_base_url: str | None = field(default=None, metadata={"help": "Base URL of an OpenAI-compatible judge "
                                                                       "(vLLM, Ollama, llama.cpp, Azure, OpenAI)."})
    constitution: str | None = field(default=None, metadata={"help": "Constitution YAML (default: HEAL's)."})
    cot: bool = field(default=False, metadata={"help": "Let the judge reason before its verdict."})
    judge_cache: str | None = field(default=None, metadata={
        "help": "SQLite cache of judgments (default: $HEAL_CACHE_DIR or ~/.cache/heal/judgments.sqlite)."})
    judge_concurrency: int = field(default=8, metadata={"help": "Concurrent requests to an HTTP judge."})
    judge_timeout: float = field(default=60.0, metadata={"help": "Seconds per HTTP judge request."})
    judge_max_retries: int = field(default=4, metadata={"help": "Retries (with backoff) per HTTP judge request."})
    judge_batch_size: int = field(default=8, metadata={"help": "Batch size of a local (hf:) judge."})
    allow_credentialed_data_to_remote_endpoint: bool = field(default=False, metadata={
        "help": "DANGER: let credentialed (MIMIC) records go to a non-loopback judge. The PhysioNet DUA forbids "
                "it for third-party services."})
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})



CONTRACT = VerbContract(output="file", inputs=("dataset_path", "agreement"), models=("model_name",),
                        summarize=lambda output: records_file_summary(output, "preference pairs"))


def make_parser():
    return _make_parser("heal label", __doc__.split("\n")[0], LabelConfig)


def build_judge(config: LabelConfig, credentialed: bool):
    from heal.feedback.cache import JudgmentCache
    from heal.feedback.judges import make_judge, parse_spec

    kind, _ = parse_spec(config.judge)
    options = {"hf": {"batch_size": config.judge_batch_size},
               "openai": {"concurrency": config.judge_concurrency, "timeout": config.judge_timeout,
                          "max_retries": config.judge_max_retries}}.get(kind, {})
    judge = make_judge(config.judge, base_url=config.judge_base_url, constitution=config.constitution,
                       cot=config.cot, cache=JudgmentCache(config.judge_cache), credentialed=credentialed,
                       allow_remote=config.allow_credentialed_data_to_remote_endpoint, **options)
    judge.guard([])  # the PHI guard speaks before any sampling or request
    return judge


def judge_in_batches(judge, items: list, progress: bool, size: int = 64) -> list:
    from tqdm.auto import tqdm

    judgments = []
    with tqdm(total=len(items), desc=f"judging ({judge.spec})", unit="pair", disable=not progress) as bar:
        for start in range(0, len(items), size):
            judgments.extend(judge.compare(items[start:start + size]))
            bar.update(min(size, len(items) - start))
    return judgments


# --- labelling ---------------------------------------------------------------------------------------------------

def _candidates_path(config: LabelConfig) -> Path:
    return Path(config.output_path + ".candidates.partial.jsonl")


def sample_candidates(config: LabelConfig, prompts: list[str]) -> list[list[str]]:
    """K sampled answers per prompt, reused from the partial file when a previous attempt got this far."""
    partial = _candidates_path(config)
    fingerprint = {k: getattr(config, k) for k in ("model_name", "dataset_path", "num_candidates", "temperature",
                                                    "top_p", "max_new_tokens", "max_prompts", "seed")}
    if partial.exists():
        saved = io.read_records(partial)
        if saved and saved[0].get("fingerprint") == fingerprint and len(saved) == len(prompts) + 1:
            return [row["candidates"] for row in saved[1:]]
    import torch

    from heal.models.generate import load_backend

    torch.manual_seed(config.seed)
    backend = load_backend(config.model_name, batch_size=config.batch_size, backend="hf", progress=config.progress)
    texts = [backend.render(prompt) for prompt in prompts for _ in range(config.num_candidates)]
    generations = backend.generate(texts, max_new_tokens=config.max_new_tokens, temperature=config.temperature,
                                   top_p=config.top_p, desc="sampling candidates")
    k = config.num_candidates
    candidates = [[g.text.strip() for g in generations[i * k:(i + 1) * k]] for i in range(len(prompts))]
    with io.atomic_path(partial) as tmp:  # resume state only: no metadata sidecar, removed when the run completes
        rows = [{"fingerprint": fingerprint}] + [{"candidates": c} for c in candidates]
        tmp.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return candidates


def make_pairs(candidates: list[str], limit: int, rng: random.Random) -> list[tuple[str, str]]:
    """Up to `limit` pairs of distinct, non-empty candidates, in a seeded random order."""
    unique = [c for c in dict.fromkeys(candidates) if c.strip()]
    pairs = list(itertools.combinations(unique, 2))
    rng.shuffle(pairs)
    return pairs[:limit]


def label(config: LabelConfig) -> dict:
    from heal.data.schema import is_credentialed
    from heal.feedback.judges import JudgeItem

    if not config.model_name or not config.dataset_path:
        raise HealError("heal label needs --model_name (the policy) and --dataset_path (prompts), or --agreement")
    if config.num_candidates < 2:
        raise HealError(f"--num_candidates {config.num_candidates}: need at least 2 answers to make a pair")
    io.check_output_path(config.output_path)
    from heal.models.generate import check_model_path

    check_model_path(config.model_name)
    records = io.read_records(config.dataset_path)
    io.require_columns(records, ["prompt"], config.dataset_path, "heal prep writes a prompt column")
    records = records[:config.max_prompts] if config.max_prompts else records
    credentialed = is_credentialed(records, config.dataset_path)
    judge = build_judge(config, credentialed)
    candidates = sample_candidates(config, [str(r["prompt"]) for r in records])
    rng = random.Random(config.seed)
    items, owners = [], []
    for record, answers in zip(records, candidates):
        for a, b in make_pairs(answers, config.pairs_per_prompt, rng):
            items.append(JudgeItem(str(record["prompt"]), a, b, reference=record.get("reference") or None,
                                   label=record.get("label") or None, source=record.get("source") or None))
            owners.append(record)
    judgments = judge_in_batches(judge, items, config.progress)
    pairs, ties = [], 0
    for record, item, judgment in zip(owners, items, judgments):
        if judgment.verdict == "tie":
            ties += 1
            continue
        chosen, rejected = (item.a, item.b) if judgment.verdict == "a" else (item.b, item.a)
        p_chosen = judgment.p_a if judgment.verdict == "a" else 1.0 - judgment.p_a
        keep = {k: v for k, v in record.items() if k not in ("prompt", "completion", "chosen", "rejected")}
        pairs.append({**keep, "prompt": item.prompt, "chosen": chosen, "rejected": rejected, "judge": judge.spec,
                      "p_chosen": round(p_chosen, 6), "p_a_first": round(judgment.p_ab, 6),
                      "p_a_second": round(judgment.p_ba, 6), "position_flip": judgment.position_flip,
                      "rationale": judgment.rationale})
    summary = {"prompts": len(records), "pairs_judged": len(items), "pairs_written": len(pairs), "ties_dropped": ties,
               "position_flips": sum(j.position_flip for j in judgments), "judge_calls": judge.calls,
               "cache_hits": getattr(judge.cache, "hits", 0)}
    if not pairs:
        raise HealError(f"{config.dataset_path}: no pair could be labelled ({ties} ties, {len(items)} pairs); the "
                        "policy may give identical answers: raise --temperature or --num_candidates")
    metadata = {"stage": "label", "source": "mimic" if credentialed else "rlaif", "credentialed": credentialed,
                "config": to_dict(config), "summary": summary}
    io.write_records(config.output_path, pairs, metadata)
    _candidates_path(config).unlink(missing_ok=True)
    return summary


# --- agreement ---------------------------------------------------------------------------------------------------

def agreement(config: LabelConfig) -> dict:
    """Judge–human agreement and position-bias rate on human-labelled pairs (chosen = the human's preference)."""
    from heal.data.schema import is_credentialed
    from heal.feedback.judges import JudgeItem
    from heal.feedback.preferences import load_preferences

    io.check_output_path(config.output_path, (".json",))
    pairs = load_preferences(config.agreement)[:config.max_prompts or None]
    judge = build_judge(config, is_credentialed(pairs, config.agreement))
    items = [JudgeItem(p["prompt"], p["chosen"], p["rejected"], reference=p.get("reference") or None,
                       label=p.get("label") or None, source=p.get("source") or None) for p in pairs]
    judgments = judge_in_batches(judge, items, config.progress)
    decided = [j for j in judgments if j.verdict != "tie"]
    report = {
        "judge": judge.spec, "pairs": len(pairs),
        "agreement": sum(j.verdict == "a" for j in decided) / len(decided) if decided else None,
        "agreement_ties_half": sum(1.0 if j.verdict == "a" else 0.5 if j.verdict == "tie" else 0.0
                                   for j in judgments) / len(judgments),
        "first_order_agreement": sum(1.0 if j.p_ab > 0.5 else 0.5 if j.p_ab == 0.5 else 0.0
                                     for j in judgments) / len(judgments),  # one order only, ties as ½
        "position_bias_rate": sum(j.position_flip for j in judgments) / len(judgments),
        "ties": len(judgments) - len(decided), "judge_calls": judge.calls,
        "config": to_dict(config),
    }
    io.write_json(config.output_path, report)
    return report


def main(config: LabelConfig) -> dict:
    if config.agreement:
        report = agreement(config)
        share = "n/a" if report["agreement"] is None else f"{report['agreement']:.1%}"
        print(f"heal label --agreement: {report['pairs']} human-labelled pairs, judge {report['judge']}\n"
              f"  agreement with humans: {share} (ties {report['ties']}); "
              f"position-bias rate: {report['position_bias_rate']:.1%}\n  report: {config.output_path}")
        return report
    summary = label(config)
    print(f"heal label: {summary['pairs_written']} pairs from {summary['prompts']} prompts → {config.output_path}\n"
          f"  ties dropped {summary['ties_dropped']}, position flips {summary['position_flips']}, "
          f"judge calls {summary['judge_calls']} (cache hits {summary['cache_hits']})")
    return summary


if __name__ == "__main__":
    from heal.cli import run

    sys.exit(run(["label", *sys.argv[1:]]))
