"""Decoder trunks read at their last positions only, with the last layer computed only where it is read.

The PPO step reads a causal LM's logits and a value model's scores at the response positions alone (plus the last
prompt position): the T + 1 last of P + T positions. transformers' `logits_to_keep` skips the LM head elsewhere, but
every decoder layer still runs at every position. The last layer's output at a prompt position feeds nothing — no
later layer reads it — so `last_hidden_states` runs that layer's query projection, attention, output projection and
MLP at the kept positions only; its keys and values (which the kept queries attend to) are still computed at every
position. The result equals `trunk(...).last_hidden_state[:, -keep:]` up to float rounding; on heal-tiny's PPO
workload (prompts of 130-180 tokens, 32-token responses, 4 layers) it is a quarter of the trunk's work at ~80% of the
positions, in the forward and in the backward pass (docs/ppo.md, "Issue 16, third round").

Only Llama-style decoders take this path (TRIMMABLE: pre-norm attention with rotary positions, then a pre-norm MLP —
SmolLM2 and heal-tiny are Llama); every other model, and attention implementations other than SDPA and eager, run the
trunk's own forward and slice.
"""

from __future__ import annotations

import torch
from torch import nn

# model_type → decoder layers laid out as Llama's: input_layernorm → self_attn (q/k/v/o_proj, rotary) →
# residual → post_attention_layernorm → mlp → residual. Mistral and Qwen2 differ in sliding windows, Qwen3 in q/k norms.
TRIMMABLE = frozenset({"llama"})
ATTENTION = frozenset({"sdpa", "eager"})


def causal_lm_parts(model) -> tuple[nn.Module | None, nn.Module | None]:
    """(trunk, lm_head) of a transformers causal LM, PEFT-wrapped or not; (None, None) for anything else."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    trunk = getattr(inner, getattr(inner, "base_model_prefix", ""), None)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    return (trunk, head) if trunk is not None and head is not None else (None, None)


def can_trim(trunk) -> bool:
    """Whether `last_hidden_states` computes the trunk's last layer at the kept positions only: a Llama-style trunk
    whose last layer holds its own weights (FSDP and ZeRO-3 gather a layer's shards in its forward, which this path
    does not call)."""
    config = getattr(trunk, "config", None)
    if (trunk is None or config is None or getattr(config, "model_type", None) not in TRIMMABLE
            or getattr(config, "_attn_implementation", None) not in ATTENTION
            or not all(hasattr(trunk, name) for name in ("embed_tokens", "layers", "rotary_emb", "norm"))):
        return False
    return not any(hasattr(p, "ds_id") or type(p).__name__ in ("DTensor", "FlatParameter")
                   for p in trunk.layers[-1].parameters())


def response_logits(model, input_ids, attention_mask, position_ids, length: int) -> torch.Tensor:
    """A causal LM's logits that predict the last `length` tokens, (B, length, V), as
    `model(..., logits_to_keep=length + 1).logits[:, :-1]` — with the last layer computed at those positions only
    when the trunk allows it (can_trim)."""
    trunk, lm_head = causal_lm_parts(model)
    if not can_trim(trunk):
        return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False,
                     logits_to_keep=length + 1).logits[:, :-1]
    return lm_head(last_hidden_states(trunk, input_ids, attention_mask, position_ids, length + 1)[:, :-1])


def last_hidden_states(trunk, input_ids, attention_mask, position_ids, keep: int) -> torch.Tensor:
    """(B, L) ids → the trunk's final hidden states (after its final norm) at the last `keep` positions, (B, keep, H).

    Left-padded rows (the PPO layout): the kept positions are each row's last `keep`."""
    length = input_ids.shape[1]
    if not can_trim(trunk) or keep >= length:
        return trunk(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                     use_cache=False).last_hidden_state[:, -keep:]
    from transformers.masking_utils import create_causal_mask

    embeds = trunk.embed_tokens(input_ids)
    mask = create_causal_mask(config=trunk.config, inputs_embeds=embeds, attention_mask=attention_mask,
                              past_key_values=None, position_ids=position_ids)
    cos, sin = trunk.rotary_emb(embeds, position_ids=position_ids)
    layers = trunk.layers[: trunk.config.num_hidden_layers]
    hidden = embeds
    for layer in layers[:-1]:
        hidden = layer(hidden, attention_mask=mask, position_embeddings=(cos, sin), position_ids=position_ids)
    last = layers[-1]
    attended = _attention_at_last(last.self_attn, last.input_layernorm(hidden), cos, sin,
                                  _query_rows(mask, keep, length, embeds, trunk.config), keep)
    hidden = hidden[:, -keep:] + attended
    hidden = hidden + last.mlp(last.post_attention_layernorm(hidden))
    return trunk.norm(hidden)


def _attention_at_last(attn, x, cos, sin, mask, keep: int) -> torch.Tensor:
    """Llama self-attention with queries at the last `keep` positions of `x` (B, L, H) and keys/values at all L."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.llama.modeling_llama import eager_attention_forward, rotate_half

    batch, length, _ = x.shape
    query = attn.q_proj(x[:, -keep:]).view(batch, keep, -1, attn.head_dim).transpose(1, 2)
    key = attn.k_proj(x).view(batch, length, -1, attn.head_dim).transpose(1, 2)
    value = attn.v_proj(x).view(batch, length, -1, attn.head_dim).transpose(1, 2)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, L, D): broadcast over heads
    query = query * cos[:, :, -keep:] + rotate_half(query) * sin[:, :, -keep:]
    key = key * cos + rotate_half(key) * sin
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager_attention_forward)
    out, _ = interface(attn, query, key, value, mask, dropout=0.0, scaling=attn.scaling)
    return attn.o_proj(out.reshape(batch, keep, -1).contiguous())


def _query_rows(mask, keep: int, length: int, like: torch.Tensor, config) -> torch.Tensor:
    """The attention mask's rows for the last `keep` queries. transformers leaves the mask out (None) when it is
    purely causal; a non-square causal mask is then built here (boolean for SDPA, additive for eager)."""
    if mask is not None:
        return mask[:, :, -keep:, :]
    allowed = torch.ones(keep, length, dtype=torch.bool, device=like.device).tril(diagonal=length - keep)[None, None]
    if config._attn_implementation == "sdpa":
        return allowed
    additive = torch.zeros(allowed.shape, dtype=like.dtype, device=like.device)
    return additive.masked_fill(~allowed, torch.finfo(like.dtype).min)
