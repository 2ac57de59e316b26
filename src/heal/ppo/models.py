"""PPO's four models: the policy (trained), the reference (the initial policy, frozen), the value model (trained) and
the reward (a frozen reward model, an AI judge or a rule; heal.ppo.rewards).

- Policy: the SFT model, loaded by heal.models.loading. With LoRA (--use_peft) only adapters train, and the reference
  is the same network with its adapters disabled, so no second copy is kept in memory.
- Value model: a sequence classifier with one output whose head is applied at every position, giving V(s_t) for
  each response token. It starts from the reward model (Huang et al. 2024, detail 3) when the reward model shares the
  policy's tokenizer — a value per policy token needs the same tokens — else from the policy, with a zero head (so
  V ≡ 0 at the start). LoRA applies to it too; its head always trains fully.
- --share_backbone: no value model; a value head on the policy's trunk instead (SharedTrunkPolicyAndValue).
- Dropout is off in every model (Huang et al. 2024, detail 6): with dropout the log-probabilities of the rollout and
  of the update would differ for the same weights, and the ratio π/π_old would not start at 1. Every dropout
  probability is set to 0 (LoRA's included), so train mode (needed by gradient checkpointing) and eval mode compute
  the same function.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from heal.errors import HealError
from heal.models.classifier import classifier_parts, disable_dropout, freeze, token_scores  # noqa: F401
from heal.models.trunk import can_trim, causal_lm_parts, last_hidden_states, response_logits


# Rows of a forward pass are run in groups of similar length, each without the left padding all its rows share: less
# padding is computed. At most 4 groups of at least 4 rows: on heal-tiny (CPU, 16 rollouts of 130-180 prompt tokens)
# this cut a PPO step's forward + backward by 7%; more, smaller groups lose more to per-call overhead than they save.
MAX_LENGTH_GROUPS = 4
MIN_GROUP_ROWS = 4


def length_groups(attention_mask: torch.Tensor) -> list[torch.Tensor]:
    """Row indices sorted by real length and cut into at most MAX_LENGTH_GROUPS groups of ≥ MIN_GROUP_ROWS rows."""
    order = torch.argsort(attention_mask.sum(dim=1), stable=True)
    return list(torch.tensor_split(order, max(1, min(MAX_LENGTH_GROUPS, len(order) // MIN_GROUP_ROWS))))


def without_shared_padding(input_ids, attention_mask, position_ids) -> tuple[torch.Tensor, ...]:
    """The inputs without the columns of left padding every row has. Contiguous copies: a slice's stride and storage
    offset would make torch.compile (--torch_compile) specialise on whether any column was cut, and recompile."""
    start = int(attention_mask.any(dim=0).long().argmax())
    return tuple(t[:, start:].contiguous() for t in (input_ids, attention_mask, position_ids))


class PolicyAndValue(nn.Module):
    """Policy and value model as one module: one optimizer, one DDP/FSDP wrapper, one backward."""

    def __init__(self, policy, value_model):
        super().__init__()
        self.policy = policy
        self.value_model = value_model

    def forward(self, input_ids, attention_mask, position_ids, response_length: int):
        """Logits that predict the last `response_length` tokens (B, T, V) and the values of the states before
        each of them (B, T). Inputs are left-padded (B, L); rows run in length groups (length_groups)."""
        groups = length_groups(attention_mask)
        outputs = [self._forward(input_ids[rows], attention_mask[rows], position_ids[rows], response_length)
                   for rows in groups]
        inverse = torch.argsort(torch.cat(groups))  # back to the callers' row order
        return torch.cat([o[0] for o in outputs])[inverse], torch.cat([o[1] for o in outputs])[inverse]

    def _forward(self, input_ids, attention_mask, position_ids, response_length: int):
        inputs = without_shared_padding(input_ids, attention_mask, position_ids)
        logits = self._step_function("policy")(self.policy, *inputs, response_length)
        values = self._step_function("value")(self.value_model, *inputs, keep=response_length + 1)
        return logits, values[:, :-1]

    def compile(self, **options) -> None:
        """--torch_compile: the PPO step's policy and value passes (response_logits, token_scores) through
        torch.compile (dynamic shapes: every length group has its own length). Generation and the reference keep the
        eager modules. The compiled functions are kept out of the module tree, so state_dict, checkpoints and saving
        are unchanged."""
        self.__dict__["_compiled"] = {"policy": torch.compile(response_logits, dynamic=True, **options)}
        if getattr(self, "value_model", None) is not None:
            self.__dict__["_compiled"]["value"] = torch.compile(token_scores, dynamic=True, **options)

    def _step_function(self, name: str):
        """The PPO step's function for "policy" (response_logits) or "value" (token_scores): compiled after
        compile()."""
        return self.__dict__.get("_compiled", {}).get(name, response_logits if name == "policy" else token_scores)


class SharedTrunkPolicyAndValue(PolicyAndValue):
    """--share_backbone: the value is a linear head on the policy's own last hidden state (after the final norm,
    the features the LM head reads), as older TRL's AutoModelForCausalLMWithValueHead and OpenRLHF's shared critic.
    One trunk forward and backward per PPO step instead of two — but the value model no longer starts from the reward
    model: the head starts at zero (V ≡ 0), and the value loss (× vf_coef) also trains the policy's trunk."""

    def __init__(self, policy):
        nn.Module.__init__(self)
        self.policy = policy
        config = policy.config
        self.value_head = nn.Linear(config.hidden_size, 1, dtype=next(policy.parameters()).dtype)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def _forward(self, input_ids, attention_mask, position_ids, response_length: int):
        inputs = without_shared_padding(input_ids, attention_mask, position_ids)
        trunk, lm_head = causal_lm_parts(self.policy)
        if can_trim(trunk):
            hidden = self._step_function("trunk")(trunk, *inputs, response_length + 1)[:, :-1]
            return lm_head(hidden), self.value_head(hidden).squeeze(-1)
        out = self._step_function("policy")(*inputs, use_cache=False, logits_to_keep=response_length + 1,
                                            output_hidden_states=True)
        hidden = out.hidden_states[-1][:, -response_length - 1:-1]  # the states before each response token
        return out.logits[:, :-1], self.value_head(hidden).squeeze(-1)

    def compile(self, **options) -> None:
        """--torch_compile: the shared trunk's pass (last_hidden_states; the policy's own forward for other model
        types) through torch.compile, kept out of the module tree as in PolicyAndValue.compile."""
        self.__dict__["_compiled"] = {"trunk": torch.compile(last_hidden_states, dynamic=True, **options),
                                      "policy": torch.compile(self.policy, dynamic=True, **options)}

    def _step_function(self, name: str):
        return self.__dict__.get("_compiled", {}).get(name, last_hidden_states if name == "trunk" else self.policy)


def model_load_kwargs(model_args) -> dict:
    """from_pretrained keywords the model flags set: --dtype and --attn_implementation (policy and value model)."""
    keys = ("dtype", "attn_implementation")
    return {k: getattr(model_args, k) for k in keys if getattr(model_args, k, None)}


def load_policy_and_reference(model_args, training):
    """(policy, reference or None with LoRA, tokenizer, ModelInfo)."""
    from heal.models.loading import load_policy

    kwargs = model_load_kwargs(model_args)
    policy, tokenizer, info = load_policy(model_args.model_name_or_path, revision=model_args.model_revision,
                                          trust_remote_code=model_args.trust_remote_code, **kwargs)
    reference = None
    if model_args.use_peft:
        from peft import get_peft_model
        from trl import get_peft_config

        policy = get_peft_model(policy, get_peft_config(model_args))
    else:
        reference = freeze(copy.deepcopy(policy))
    disable_dropout(policy)  # after PEFT, whose LoRA layers bring their own dropout
    if training.gradient_checkpointing or training.activation_checkpointing:
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return policy, reference, tokenizer, info


def load_value_model(path: str, tokenizer, model_args, from_policy: bool):
    """A one-output sequence classifier from `path` (the reward model, or the policy with a zero-initialised head)."""
    import logging

    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from heal.models.loading import model_location

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)  # "score.weight newly initialised" is expected from a causal LM
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            model_location(path, "value model"), num_labels=1,
            trust_remote_code=model_args.trust_remote_code, **model_load_kwargs(model_args))
    except (OSError, ValueError) as e:
        raise HealError(f"value model {path}: cannot be loaded as a sequence classifier "
                        f"({str(e).splitlines()[0][:200]})") from None
    finally:
        hf_logging.set_verbosity(level)
    model.config.pad_token_id = tokenizer.pad_token_id
    _, head = classifier_parts(model)
    if from_policy:
        nn.init.zeros_(head.weight)
        if getattr(head, "bias", None) is not None:
            nn.init.zeros_(head.bias)
    else:
        rescale_to_normalised_reward(model)
    if model_args.use_peft:
        from peft import get_peft_model
        from trl import get_peft_config

        config = get_peft_config(model_args)
        config.task_type = "SEQ_CLS"
        config.modules_to_save = list(config.modules_to_save or []) + ["score"]  # the head always trains
        model = get_peft_model(model, config)
    disable_dropout(model)
    return model


def rescale_to_normalised_reward(model) -> None:
    """Put a value model built from a normalised reward model on the scale of PPO's rewards.

    PPO's score is (r − mean) / std (heal.rl.rewards, config.json's heal_reward_normalization), but the reward model's
    head outputs r = w·h + b. Left as it is, V ≈ r at the start, a bias GAE carries into every advantage (whitening
    does not remove it: it depends on the position). The head becomes w/std, (b − mean)/std — a new Linear with a
    bias where the head had none (Llama's has none) — so V(s) starts at the normalised score of s, and the statistics
    are dropped from the value model's config so nothing applies them twice."""
    from heal.reward.scoring import NORMALIZATION_KEY, normalization

    if not getattr(model.config, NORMALIZATION_KEY, None):
        return
    mean, std = normalization(model.config)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    old = inner.score
    head = nn.Linear(old.in_features, old.out_features, bias=True, dtype=old.weight.dtype,
                     device=old.weight.device)
    with torch.no_grad():
        head.weight.copy_(old.weight / std)
        bias = old.bias if getattr(old, "bias", None) is not None else torch.zeros_like(head.bias)
        head.bias.copy_((bias - mean) / std)
    inner.score = head
    setattr(model.config, NORMALIZATION_KEY, None)


def merged_policy(policy):
    """The policy as a plain PreTrainedModel (LoRA merged into a copy; the training copy is left as it is)."""
    if hasattr(policy, "merge_and_unload"):
        return copy.deepcopy(policy).merge_and_unload()
    return policy
