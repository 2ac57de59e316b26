"""The experience maker: prompts → responses → scores, log-probabilities, reference log-probabilities and values.

Shapes: B rollouts, P prompt tokens (left-padded to the batch's longest prompt), T = response_length.

Generation (Huang et al. 2024, details 1–2): prompts are left-padded so every row continues from its last real
token; each row gets exactly T response tokens. Rows may stop early at a stop token — everything after the first stop
token is padding either way, so the result is the same as generating T tokens and truncating, only faster. The
response mask is 1 up to and including the stop token; a row that never stopped keeps all T tokens and is flagged
(`has_stop` False) for the missing-EOS penalty.

Scoring (detail 7): log-probabilities are computed from logits divided by the sampling temperature, so π_old and π
are the distributions the tokens were actually sampled from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from heal.models.trunk import response_logits
from heal.ppo.losses import logprobs_of
from heal.rl.rewards import ScoringBatch, sequence_inputs
from heal.rl.sampling import (RolloutSettings, decode, encode_prompts, generate, left_pad,  # noqa: F401
                               truncate_after_stop)


@dataclass
class Rollout:
    """One batch of experience on one process."""

    query: torch.Tensor  # (B, P) left-padded prompt ids
    query_mask: torch.Tensor  # (B, P)
    response: torch.Tensor  # (B, T) sampled ids, pad after the stop token; T ≤ response_length: the longest response
    response_mask: torch.Tensor  # (B, T) 1 up to and including the stop token
    has_stop: torch.Tensor  # (B,) bool: the response ended with a stop token
    logprobs: torch.Tensor | None  # (B, T) log π_old(a_t) at the sampling temperature, 0 on padding
    ref_logprobs: torch.Tensor  # (B, T) log π_ref(a_t), 0 on padding
    values: torch.Tensor | None  # (B, T) V(s_t) of the rollout's value model, 0 on padding
    scores: torch.Tensor  # (B,) the reward source's score (after the missing-EOS penalty)
    texts: list[str]
    records: list[dict]


@torch.no_grad()
def forward_pass(model, reference, query, query_mask, response, response_mask, temperature: float,
                 policy_pass: bool = True):
    """log π_old, log π_ref and V for the sampled tokens, each (B, T), 0 on padding; log π_old and V are None
    without `policy_pass`.

    `model` is the (unwrapped) PolicyAndValue; `reference` the frozen initial policy, or None with LoRA (the policy
    with its adapters disabled is the reference)."""
    input_ids, attention_mask, position_ids = sequence_inputs(query, query_mask, response, response_mask)
    length = response.shape[1]
    mask = response_mask.float()
    logprobs = values = None
    if policy_pass:
        logits, values = model(input_ids, attention_mask, position_ids, length)
        logprobs = logprobs_of(logits / (temperature + 1e-7), response) * mask
        values = values * mask
        del logits
    if reference is None:
        with model.policy.disable_adapter():
            ref_logits = response_logits(model.policy, input_ids, attention_mask, position_ids, length)
    else:
        ref_logits = response_logits(reference, input_ids, attention_mask, position_ids, length)
    ref_logprobs = logprobs_of(ref_logits / (temperature + 1e-7), response) * mask
    return logprobs, ref_logprobs, values


def make_rollout(model, reference, reward_source, tokenizer, records: list[dict], settings) -> Rollout:
    """Roll out `records` in chunks of `local_rollout_forward_batch_size` and join the chunks."""
    chunks = []
    size = settings.forward_batch_size
    for start in range(0, len(records), size):
        chunks.append(_rollout_chunk(model, reference, reward_source, tokenizer, records[start:start + size],
                                     settings))
    return _join(chunks, tokenizer.pad_token_id)


def _rollout_chunk(model, reference, reward_source, tokenizer, records: list[dict], s: RolloutSettings) -> Rollout:
    """Steps 2–5 of a PPO update (docs/ppo.md) for one chunk of prompts."""
    device = next(model.parameters()).device
    rows = encode_prompts(tokenizer, records, s.system_prompt, s.max_prompt_length)
    query, query_mask = left_pad(rows, tokenizer.pad_token_id, device)
    # 2. Generate T tokens per left-padded prompt at the sampling temperature.
    raw = generate(model.policy, query, query_mask, s.response_length, s.temperature, s.stop_ids,
                   tokenizer.pad_token_id)
    # 3. Truncate after the first stop token: padding after it, and a mask of the real tokens. Columns that are
    #    padding in every row are dropped (nothing is computed on them; every later step masks them anyway).
    response, response_mask, has_stop = truncate_after_stop(raw, s.stop_ids, tokenizer.pad_token_id)
    width = int(response_mask.sum(dim=1).max())
    response, response_mask = response[:, :width], response_mask[:, :width]
    texts = decode(tokenizer, response, response_mask, s.stop_ids)
    # 4. Score each response (reward model / judge / rule); penalise responses that never stopped.
    batch = ScoringBatch(query, query_mask, response, response_mask, [str(r["prompt"]) for r in records], texts,
                         records)
    scores = reward_source.score(batch).float()
    if s.missing_eos_penalty:
        scores = scores - s.missing_eos_penalty * (~has_stop).float()
    # 5. One no-grad forward pass each: log π_old and V (policy and value model; unless the first PPO step provides
    #    them), log π_ref (reference).
    logprobs, ref_logprobs, values = forward_pass(model, reference, query, query_mask, response, response_mask,
                                                  s.temperature, s.policy_pass)
    return Rollout(query, query_mask, response, response_mask, has_stop, logprobs, ref_logprobs, values, scores,
                   texts, records)


def _join(chunks: list[Rollout], pad_id: int) -> Rollout:
    """Concatenate chunks: prompts re-left-padded to the longest prompt, responses right-padded to the longest."""
    width = max(c.query.shape[1] for c in chunks)
    length = max(c.response.shape[1] for c in chunks)

    def left(t: torch.Tensor, value) -> torch.Tensor:
        return torch.nn.functional.pad(t, (width - t.shape[1], 0), value=value)

    def right(t: torch.Tensor, value) -> torch.Tensor:
        return torch.nn.functional.pad(t, (0, length - t.shape[1]), value=value)

    def cat(name: str, pad=None, value=0):
        if getattr(chunks[0], name) is None:  # log π_old and V when the first PPO step provides them
            return None
        return torch.cat([pad(getattr(c, name), value) if pad else getattr(c, name) for c in chunks])

    return Rollout(
        query=cat("query", left, pad_id), query_mask=cat("query_mask", left), response=cat("response", right, pad_id),
        response_mask=cat("response_mask", right), has_stop=cat("has_stop"), logprobs=cat("logprobs", right),
        ref_logprobs=cat("ref_logprobs", right), values=cat("values", right), scores=cat("scores"),
        texts=[t for c in chunks for t in c.texts], records=[r for c in chunks for r in c.records])
