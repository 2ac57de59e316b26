"""Sequence classifiers as reward and value models: the head at every position, frozen copies, shared tokenizers.

Used by the RL verbs' reward sources (heal.rl.rewards) and by PPO's value model (heal.ppo.models). Dropout is off in
every model that is scored or trained with PPO (Huang et al. 2024, detail 6): with dropout the same weights would give
different log-probabilities in the rollout and in the update.
"""

from __future__ import annotations

import torch
from torch import nn

from heal.errors import HealError


def disable_dropout(model: nn.Module) -> None:
    """Zero every dropout probability (modules and the config values attention layers read)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0
    config = getattr(model, "config", None)
    if config is not None:
        for key, value in list(vars(config).items()):
            if isinstance(value, float) and ("dropout" in key or key.endswith("_pdrop")):
                setattr(config, key, 0.0)


def freeze(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    disable_dropout(model)
    return model


def classifier_parts(classifier) -> tuple[nn.Module, nn.Module]:
    """(backbone, head) of a sequence classifier (PEFT-wrapped or not): the head maps hidden states to scores."""
    inner = classifier.get_base_model() if hasattr(classifier, "get_base_model") else classifier
    head = getattr(inner, "score", None)
    backbone = getattr(inner, getattr(inner, "base_model_prefix", ""), None)
    if head is None or backbone is None:
        raise HealError(f"{type(inner).__name__}: per-token values need a decoder sequence classifier with a `score` "
                        "head (Llama, Qwen, Mistral, GPT-2 …); pass --value_model_path <the policy>")
    return backbone, head


def token_scores(classifier, input_ids, attention_mask, position_ids, keep: int | None = None) -> torch.Tensor:
    """The classifier's head applied at every position: (B, L) ids → (B, L) scores; with `keep`, at the last `keep`
    positions only, (B, keep), the trunk's last layer computed only there where it allows (heal.models.trunk)."""
    from heal.models.trunk import last_hidden_states

    trunk, head = classifier_parts(classifier)
    keep = input_ids.shape[1] if keep is None else keep  # every position: the trunk's plain forward
    hidden = last_hidden_states(trunk, input_ids, attention_mask, position_ids, keep)  # (B, keep, H)
    return head(hidden).squeeze(-1).float()


def same_tokenizer(a, b) -> bool:
    """Whether two tokenizers share their vocabulary and special tokens (ids can then be handed over as they are)."""
    if a is b:
        return True
    specials = ("pad_token_id", "eos_token_id", "bos_token_id")
    return a.get_vocab() == b.get_vocab() and all(getattr(a, k) == getattr(b, k) for k in specials)
