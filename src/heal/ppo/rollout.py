"""The experience maker: prompts → responses → scores, log-probabilities, reference log-probabilities and values.

Shapes: B rollouts, P prompt tokens (left-padded to the batch's longest prompt), T = response_length.

Generation (Huang et al. 2024, details 1–2): prompts are left-padded so every row continues from its last real
token; each row gets exactly T response tokens. Rows may stop early at a stop token — everything after the first stop
token is padding either way, so the result is the same as generating T tokens and truncating, only faster. The
response mask is 1 up to and including the stop token; a row that never stopped keeps all T tokens and is flagged
(`has_stop` False) for the missing-EOS penalty.

Scoring (detail 7): log-probabilities are computed from logits divided by the sampling temperature, so π_old and π
are the distributions the tokens were actually sampled from. For that to hold, sampling is pure temperature sampling
with one explicit generation config (heal.models.sampling): the model's own generation_config (a Hub model's
repetition_penalty, top_k, …) is set aside while it generates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from heal.ppo.losses import logprobs_of
from heal.ppo.rewards import ScoringBatch, sequence_inputs


@dataclass
class RolloutSettings:
    """How rollouts are made (resolved from HealPPOConfig by heal.ppo.setup)."""

    response_length: int
    temperature: float
    stop_ids: list[int]
    max_prompt_length: int
    forward_batch_size: int = 64
    missing_eos_penalty: float | None = None
    system_prompt: str | None = None
    # False when the first PPO step's forward pass provides log π_old and V (heal.ppo.train: one optimizer step per
    # epoch over the whole batch), so the rollout skips its own pass of the policy and value model
    policy_pass: bool = True


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


def encode_prompts(tokenizer, records: list[dict], system: str | None, max_prompt_length: int) -> list[list[int]]:
    """Token ids of each formatted prompt (heal.models.prompting), keeping the last `max_prompt_length` tokens."""
    from heal.models.prompting import format_prompt

    texts = [format_prompt(tokenizer, str(r["prompt"]), system) for r in records]
    return [ids[-max_prompt_length:] for ids in tokenizer(texts)["input_ids"]]


def left_pad(rows: list[list[int]], pad_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask), both (B, longest row): each row right-aligned, padding on the left."""
    width = max(map(len, rows))
    ids = torch.tensor([[pad_id] * (width - len(r)) + list(r) for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


def truncate_after_stop(response: torch.Tensor, stop_ids: list[int],
                        pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut each response after its first stop token: (B, T) → (response with pad after the stop, mask, has_stop).

    The mask is 1 up to and including the first stop token (the policy chose to stop; that choice is trained), and 1
    everywhere for a response without one."""
    is_stop = torch.isin(response, torch.tensor(stop_ids, device=response.device)) if stop_ids else \
        torch.zeros_like(response, dtype=torch.bool)
    has_stop = is_stop.any(dim=1)
    stops_before = torch.cumsum(is_stop.long(), dim=1) - is_stop.long()  # stop tokens strictly before t
    mask = stops_before == 0
    return torch.where(mask, response, torch.full_like(response, pad_id)), mask.long(), has_stop


@torch.no_grad()
def generate(policy, query, query_mask, response_length: int, temperature: float, stop_ids: list[int],
             pad_id: int, with_logprobs: bool = False):
    """(B, T) response ids: sampled at `temperature` (greedy when 0), pure sampling (no top-k/top-p, no repetition
    penalty, whatever the model's own generation_config says: heal.models.sampling), right-padded to T with `pad_id`
    when every row stopped early. With `with_logprobs`, also (B, T) log-probabilities of the sampled tokens under
    the distribution generate() actually sampled from (for checking that scoring recomputes the same)."""
    from heal.models.sampling import only_this_config, sampling_config

    config = sampling_config(temperature, response_length, stop_ids, pad_id)
    config.output_scores = config.return_dict_in_generate = with_logprobs
    with only_this_config(policy):
        output = policy.generate(input_ids=query, attention_mask=query_mask, generation_config=config)
    sequences = output.sequences if with_logprobs else output
    response = _pad_right(sequences[:, query.shape[1]:], response_length, pad_id)
    if not with_logprobs:
        return response
    scores = torch.stack(output.scores, dim=1).float()  # (B, T', V): the processed logits each token was drawn from
    sampled = torch.log_softmax(scores, dim=-1).gather(-1, response[:, :scores.shape[1], None]).squeeze(-1)
    return response, _pad_right(sampled, response_length, 0.0)


def _pad_right(t: torch.Tensor, length: int, value) -> torch.Tensor:
    if t.shape[1] >= length:
        return t
    return torch.nn.functional.pad(t, (0, length - t.shape[1]), value=value)


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
            ref_logits = model.policy(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                      use_cache=False, logits_to_keep=length + 1).logits[:, :-1]
    else:
        ref_logits = reference(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                               use_cache=False, logits_to_keep=length + 1).logits[:, :-1]
    ref_logprobs = logprobs_of(ref_logits / (temperature + 1e-7), response) * mask
    return logprobs, ref_logprobs, values


def decode(tokenizer, response: torch.Tensor, response_mask: torch.Tensor, stop_ids: list[int]) -> list[str]:
    """Response texts without padding and without the stop token."""
    texts = []
    for ids, mask in zip(response.tolist(), response_mask.tolist()):
        kept = [t for t, m in zip(ids, mask) if m and t not in stop_ids]
        texts.append(tokenizer.decode(kept, skip_special_tokens=True))
    return texts


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
