"""Before/after evaluation on held-out prompts: greedy answers (what a deployed model says) and, when asked, one
sampled answer per prompt at the training temperature (what PPO optimises: the expected reward of the sampling
policy), scored by the run's reward source, plus PubMedQA accuracy when the records carry a yes/no/maybe label.

Every process answers its share of the prompts (every world_size-th); the results are gathered. The answers
themselves go to eval_answers.jsonl (write_answers), so a reader can see what changed, not only by how much.

    eval/score      mean reward of the greedy answers (the reward model's normalised score, the judge's or rule's)
    eval/accuracy   share of answers whose first yes/no/maybe matches the label (records with a label only)
    eval/eos_rate   share of answers that ended with a stop token within response_length
    eval/length     mean answer length in tokens (stop token included)
    eval/sampled_score, eval/sampled_accuracy     the same for the sampled answers (a fixed seed: before and after
                                                  training draw with the same random numbers)
    eval/gold       mean gold score of the same answers, when the run has a gold measure (--gold_reward,
                    heal.rl.monitor)
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import torch

from heal.contracts import StageSummary, fmt, read_jsonl, run_metrics, short
from heal.rl.monitor_report import FIGURE_FILE, report_parts
from heal.rl.rewards import ScoringBatch
from heal.rl.sampling import decode, encode_prompts, generate, left_pad, truncate_after_stop

EVAL_ANSWERS_FILE = "eval_answers.jsonl"


@torch.no_grad()
def evaluate(policy, tokenizer, reward, settings, records: list[dict], accelerator, prefix: str = "eval",
             temperature: float = 0.0, seed: int = 0, gold=None) -> tuple[dict, list[dict]]:
    """(metrics, one row per answer) for answers to `records` by `policy` (an unwrapped causal LM), greedy or sampled
    at `temperature`, scored by `reward` (heal.rl.rewards) and, when given, by the `gold` measure (another reward
    source); `settings` is a heal.rl.sampling.RolloutSettings."""
    from accelerate.utils import gather_object

    device = next(policy.parameters()).device
    mine = records[accelerator.process_index::accelerator.num_processes]
    rows = []
    # sampling draws from its own generator state, so evaluating never changes the training's random numbers
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed + accelerator.process_index)
        for start in range(0, len(mine), settings.forward_batch_size):
            rows += _answer(policy, tokenizer, reward, settings, mine[start:start + settings.forward_batch_size],
                            temperature, gold)
    rows = gather_object(rows) if accelerator.num_processes > 1 else rows
    return summarize(rows, prefix, "sampled_" if temperature > 0 else ""), rows


def _answer(policy, tokenizer, reward, settings, records: list[dict], temperature: float, gold=None) -> list[dict]:
    pad = tokenizer.pad_token_id
    device = next(policy.parameters()).device
    query, query_mask = left_pad(encode_prompts(tokenizer, records, settings.system_prompt,
                                                settings.max_prompt_length), pad, device)
    raw = generate(policy, query, query_mask, settings.response_length, temperature, settings.stop_ids, pad)
    response, response_mask, has_stop = truncate_after_stop(raw, settings.stop_ids, pad)
    texts = decode(tokenizer, response, response_mask, settings.stop_ids)
    batch = ScoringBatch(query, query_mask, response, response_mask, [str(r["prompt"]) for r in records], texts,
                         records)
    scores = reward.score(batch).tolist()
    golds = gold.score(batch).tolist() if gold is not None else [None] * len(records)
    rows = [{"prompt": str(r["prompt"]), "text": t, "score": float(s), "stopped": bool(h), "length": int(m.sum()),
             "label": r.get("label"), "sampled": temperature > 0}
            for s, h, m, t, r in zip(scores, has_stop.tolist(), response_mask, texts, records)]
    for row, g in zip(rows, golds):
        if g is not None:
            row["gold"] = float(g)
    return rows


def summarize(rows: list[dict], prefix: str, tag: str = "") -> dict:
    from heal.data.pubmedqa import parse_decision

    if not rows:
        return {}
    out = {f"{prefix}/{tag}score": statistics.fmean(r["score"] for r in rows),
           f"{prefix}/{tag}eos_rate": statistics.fmean(float(r["stopped"]) for r in rows),
           f"{prefix}/{tag}length": statistics.fmean(r["length"] for r in rows)}
    if all("gold" in r for r in rows):
        out[f"{prefix}/{tag}gold"] = statistics.fmean(r["gold"] for r in rows)
    if not tag:
        out[f"{prefix}/samples"] = len(rows)
    labelled = [r for r in rows if str(r.get("label") or "").strip().lower() in ("yes", "no", "maybe")]
    if labelled:
        out[f"{prefix}/{tag}accuracy"] = statistics.fmean(
            float(parse_decision(r["text"]) == str(r["label"]).strip().lower()) for r in labelled)
    return out


def write_eval_answers(folder: str | Path, prefix: str, rows: list[dict]) -> None:
    """eval_answers.jsonl: every held-out greedy answer, before (eval_before) and after (eval) training."""
    with open(Path(folder) / EVAL_ANSWERS_FILE, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"when": prefix, **row}, ensure_ascii=False) + "\n")


def summarize_run(output: Path) -> StageSummary:
    """The run report's view of an RL run folder (ppo, grpo): held-out reward and accuracy before → after, the KL,
    the *_curves.png figures, and held-out answers that changed."""
    _, m = run_metrics(output)
    rows, parts = [], []
    for key, name in (("score", "held-out reward, greedy"), ("accuracy", "held-out accuracy, greedy"),
                      ("sampled_score", "held-out reward, sampled")):
        if f"eval/{key}" in m:
            rows.append((f"{name} (before → after)", f"{fmt(m.get(f'eval_before/{key}'))} → {fmt(m[f'eval/{key}'])}"))
    if "eval/score" in m:
        parts.append(f"held-out reward {fmt(m.get('eval_before/score'))} → {fmt(m['eval/score'])}")
    if "eval/accuracy" in m:
        parts.append(f"accuracy {fmt(m.get('eval_before/accuracy'))} → {fmt(m['eval/accuracy'])}")
    if "objective/kl_last" in m:
        parts.append(f"KL {fmt(m['objective/kl_last'], 2)}")
        rows.append(("KL to the reference (mean of the last quarter of updates)", fmt(m["objective/kl_last"])))
    curves = [("reward, KL and losses per update", png) for png in sorted(output.glob("*_curves.png"))]
    monitor_results, monitor_tables = report_parts(output)
    rows += monitor_results
    figures = []
    if (output / FIGURE_FILE).exists():
        figures.append(("over-optimisation: held-out proxy and gold reward against √KL (Gao et al. 2022)",
                        output / FIGURE_FILE))
    if "monitor/best_step" in m:
        parts.append(f"kept update {m['monitor/best_step']} (best gold {fmt(m['monitor/best_gold'])})")
    return StageSummary(headline=", ".join(parts), metrics=m, results=rows, curves=curves, figures=figures,
                        examples=monitor_tables + _changed_answers(output))


def _changed_answers(output: Path, n: int = 4) -> list[tuple[str, list[dict]]]:
    answers = [a for a in read_jsonl(output / EVAL_ANSWERS_FILE) if not a.get("sampled")]
    before = {a["prompt"]: a for a in answers if a.get("when") == "eval_before"}
    pairs = [(before[a["prompt"]], a) for a in answers if a.get("when") == "eval" and a["prompt"] in before]
    changed = sorted(pairs, key=lambda p: p[0]["text"] == p[1]["text"])  # answers that changed first
    rows = [{"prompt": short(b["prompt"], 220), "label": b.get("label") or "", "before": b["text"], "after": a["text"],
             "reward": f"{fmt(b['score'], 2)} → {fmt(a['score'], 2)}"} for b, a in changed[:n]]
    return [("held-out answers before and after (greedy)", rows)] if rows else []
