"""Before/after evaluation on held-out prompts: greedy answers (what a deployed model says) and, when asked, one
sampled answer per prompt at the training temperature (what PPO optimises: the expected reward of the sampling
policy), scored by the run's reward source, plus PubMedQA accuracy when the records carry a yes/no/maybe label.

Every process answers its share of the prompts (every world_size-th); the results are gathered. The answers
themselves go to eval_answers.jsonl (heal.ppo.report), so a reader can see what changed, not only by how much.

    eval/score      mean reward of the greedy answers (the reward model's normalised score, the judge's or rule's)
    eval/accuracy   share of answers whose first yes/no/maybe matches the label (records with a label only)
    eval/eos_rate   share of answers that ended with a stop token within response_length
    eval/length     mean answer length in tokens (stop token included)
    eval/sampled_score, eval/sampled_accuracy     the same for the sampled answers (a fixed seed: before and after
                                                  training draw with the same random numbers)
"""

from __future__ import annotations

import statistics

import torch

from heal.ppo.rewards import ScoringBatch
from heal.ppo.rollout import decode, encode_prompts, generate, left_pad, truncate_after_stop


@torch.no_grad()
def evaluate(policy, tokenizer, reward, settings, records: list[dict], accelerator, prefix: str = "eval",
             temperature: float = 0.0, seed: int = 0) -> tuple[dict, list[dict]]:
    """(metrics, one row per answer) for answers to `records` by `policy` (an unwrapped causal LM), greedy or sampled
    at `temperature`, scored by `reward` (heal.ppo.rewards); `settings` is a heal.ppo.rollout.RolloutSettings."""
    from accelerate.utils import gather_object

    device = next(policy.parameters()).device
    mine = records[accelerator.process_index::accelerator.num_processes]
    rows = []
    # sampling draws from its own generator state, so evaluating never changes the training's random numbers
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed + accelerator.process_index)
        for start in range(0, len(mine), settings.forward_batch_size):
            rows += _answer(policy, tokenizer, reward, settings, mine[start:start + settings.forward_batch_size],
                            temperature)
    rows = gather_object(rows) if accelerator.num_processes > 1 else rows
    return summarize(rows, prefix, "sampled_" if temperature > 0 else ""), rows


def _answer(policy, tokenizer, reward, settings, records: list[dict], temperature: float) -> list[dict]:
    pad = tokenizer.pad_token_id
    device = next(policy.parameters()).device
    query, query_mask = left_pad(encode_prompts(tokenizer, records, settings.system_prompt,
                                                settings.max_prompt_length), pad, device)
    raw = generate(policy, query, query_mask, settings.response_length, temperature, settings.stop_ids, pad)
    response, response_mask, has_stop = truncate_after_stop(raw, settings.stop_ids, pad)
    texts = decode(tokenizer, response, response_mask, settings.stop_ids)
    scores = reward.score(ScoringBatch(query, query_mask, response, response_mask,
                                       [str(r["prompt"]) for r in records], texts, records))
    return [{"prompt": str(r["prompt"]), "text": t, "score": float(s), "stopped": bool(h), "length": int(m.sum()),
             "label": r.get("label"), "sampled": temperature > 0}
            for s, h, m, t, r in zip(scores.tolist(), has_stop.tolist(), response_mask, texts, records)]


def summarize(rows: list[dict], prefix: str, tag: str = "") -> dict:
    from heal.data.pubmedqa import parse_decision

    if not rows:
        return {}
    out = {f"{prefix}/{tag}score": statistics.fmean(r["score"] for r in rows),
           f"{prefix}/{tag}eos_rate": statistics.fmean(float(r["stopped"]) for r in rows),
           f"{prefix}/{tag}length": statistics.fmean(r["length"] for r in rows)}
    if not tag:
        out[f"{prefix}/samples"] = len(rows)
    labelled = [r for r in rows if str(r.get("label") or "").strip().lower() in ("yes", "no", "maybe")]
    if labelled:
        out[f"{prefix}/{tag}accuracy"] = statistics.fmean(
            float(parse_decision(r["text"]) == str(r["label"]).strip().lower()) for r in labelled)
    return out
