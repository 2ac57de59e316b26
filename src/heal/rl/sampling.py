"""Sampling answers from a policy the way HEAL's RL verbs do (ppo's rollouts, ppo's and grpo's held-out scoring).

Shapes: B prompts, P prompt tokens (left-padded to the batch's longest prompt), T = response_length.

Prompts are formatted by heal.models.prompting and left-padded, so every row continues from its last real token; each
row gets exactly T response tokens, with everything after the first stop token as padding (Huang et al. 2024,
details 1–2). The response mask is 1 up to and including the stop token; a row that never stopped keeps all T tokens
and is flagged (`has_stop` False) for the missing-EOS penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RolloutSettings:
    """How rollouts are made (heal.ppo.setup resolves them from HealPPOConfig)."""

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


def encode_prompts(tokenizer, records: list[dict], system: str | None, max_prompt_length: int) -> list[list[int]]:
    """Token ids of each formatted prompt (heal.models.prompting), keeping the last `max_prompt_length` tokens."""
    from heal.models.prompting import format_prompt

    if not records:  # no held-out prompts (--eval_split_size 0): the tokenizer rejects an empty batch
        return []
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


def decode(tokenizer, response: torch.Tensor, response_mask: torch.Tensor, stop_ids: list[int]) -> list[str]:
    """Response texts without padding and without the stop token."""
    texts = []
    for ids, mask in zip(response.tolist(), response_mask.tolist()):
        kept = [t for t, m in zip(ids, mask) if m and t not in stop_ids]
        texts.append(tokenizer.decode(kept, skip_special_tokens=True))
    return texts
