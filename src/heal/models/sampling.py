"""One explicit generation config for every HEAL generate() call, so a model's own defaults cannot change it.

    from heal.models.sampling import sampling_config, only_this_config
    config = sampling_config(temperature=0.7, max_new_tokens=64, stop_ids=[2], pad_id=2)
    with only_this_config(model):
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)

Why: transformers fills every field a passed GenerationConfig leaves unset (None) from the model's own
`generation_config` — a Hub model's repetition_penalty, top_k, no_repeat_ngram_size or suppress_tokens would then
shape what PPO and GRPO sample, while their log-probabilities are computed from the plain logits divided by the
temperature: the policy would be trained on a distribution it did not sample from. So the config sets every
logits-changing setting to its neutral value, and `only_this_config` hides the model's own config (leaving only its
special-token ids) for the duration of the call.
"""

from __future__ import annotations

from contextlib import contextmanager

# Neutral values of the settings that reshape the next-token distribution (transformers' logits processors).
NEUTRAL = {"top_k": 0, "top_p": 1.0, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
           "repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
           "encoder_no_repeat_ngram_size": 0, "num_beams": 1, "length_penalty": 1.0,
           "min_new_tokens": 0, "renormalize_logits": False}
SAMPLING_ONLY = {"top_k", "top_p", "typical_p", "epsilon_cutoff", "eta_cutoff"}  # unused (and warned about) greedily


def sampling_config(temperature: float, max_new_tokens: int, stop_ids: list[int] | None, pad_id: int | None,
                    top_p: float = 1.0):
    """Pure sampling at `temperature` (greedy when 0), optionally nucleus-truncated by `top_p`; nothing else."""
    from transformers import GenerationConfig

    known = GenerationConfig().to_dict()
    sample = temperature > 0
    neutral = {k: v for k, v in NEUTRAL.items() if k in known and (sample or k not in SAMPLING_ONLY)}
    if sample:
        neutral.update(temperature=temperature, top_p=top_p)
    return GenerationConfig(**neutral, do_sample=sample, max_new_tokens=max_new_tokens,
                            eos_token_id=list(stop_ids) if stop_ids else None, pad_token_id=pad_id, use_cache=True)


def ids_only(generation_config):
    """A generation config with only the special-token ids of `generation_config` (no sampling defaults)."""
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=generation_config.bos_token_id, eos_token_id=generation_config.eos_token_id,
                            pad_token_id=generation_config.pad_token_id)


def _transformers_model(model):
    """The PreTrainedModel inside `model` (a PEFT or other wrapper), whose generation_config generate() reads."""
    from transformers import PreTrainedModel

    return next(m for m in model.modules() if isinstance(m, PreTrainedModel))


@contextmanager
def only_this_config(model):
    """Inside the block, `model`'s own generation_config holds only its special-token ids."""
    inner = _transformers_model(model)
    saved = inner.generation_config
    inner.generation_config = ids_only(saved)
    try:
        yield
    finally:
        inner.generation_config = saved
