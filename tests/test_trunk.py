"""heal.models.trunk: the last decoder layer computed only at the positions PPO reads — the same logits, scores and
gradients as the full forward, on the layouts PPO feeds it (left padding, right padding, none)."""

import pytest
import torch
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                          LlamaForSequenceClassification)

from heal.models import trunk as trunk_module
from heal.models.classifier import token_scores
from heal.models.trunk import can_trim, causal_lm_parts, last_hidden_states, response_logits


def _llama(kv_heads: int, attention: str, classifier: bool = False):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=kv_heads, attn_implementation=attention,
                         num_labels=1, pad_token_id=0)
    return (LlamaForSequenceClassification if classifier else LlamaForCausalLM)(config)


def _inputs(padded: bool):
    torch.manual_seed(1)
    ids = torch.randint(1, 200, (3, 18))
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :6] = 0  # left padding: a shorter prompt
        mask[1, :1] = 0
        mask[2, -3:] = 0  # right padding: a response that stopped early
    return ids, mask, (mask.cumsum(dim=1) - 1).clamp(min=0)


@pytest.fixture
def counted(monkeypatch):
    """How many times the trimmed last layer ran."""
    calls = []
    original = trunk_module._attention_at_last
    monkeypatch.setattr(trunk_module, "_attention_at_last", lambda *a: calls.append(1) or original(*a))
    return calls


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("kv_heads", [4, 2])
@pytest.mark.parametrize("padded", [True, False])
def test_trimmed_last_layer_gives_the_full_forwards_logits_and_gradients(attention, kv_heads, padded, counted):
    model = _llama(kv_heads, attention)
    ids, mask, positions = _inputs(padded)
    full = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                 logits_to_keep=6).logits[:, :-1]
    full_grads = torch.autograd.grad(full.square().sum(), list(model.parameters()))
    trimmed = response_logits(model, ids, mask, positions, 5)
    trimmed_grads = torch.autograd.grad(trimmed.square().sum(), list(model.parameters()))
    assert counted == [1]  # the trimmed path ran, not the fallback
    assert trimmed.shape == (3, 5, 200)
    torch.testing.assert_close(trimmed, full, atol=1e-5, rtol=1e-5)
    for a, b in zip(trimmed_grads, full_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_trimmed_scores_are_the_classifiers_scores_at_the_kept_positions(counted):
    classifier = _llama(2, "sdpa", classifier=True).eval()
    ids, mask, positions = _inputs(padded=True)
    with torch.no_grad():
        every = token_scores(classifier, ids, mask, positions)
        kept = token_scores(classifier, ids, mask, positions, keep=7)
    assert counted == [1] and every.shape == (3, 18) and kept.shape == (3, 7)
    torch.testing.assert_close(kept, every[:, -7:], atol=1e-5, rtol=1e-5)


def test_other_architectures_run_their_own_forward(counted):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=200, n_embd=32, n_layer=2, n_head=4, n_positions=64)).eval()
    ids, mask, positions = _inputs(padded=True)
    trunk, _ = causal_lm_parts(model)
    assert not can_trim(trunk)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         logits_to_keep=5).logits[:, :-1]
        torch.testing.assert_close(response_logits(model, ids, mask, positions, 4), expected)
        hidden = last_hidden_states(trunk, ids, mask, positions, 4)
    assert counted == [] and hidden.shape == (3, 4, 32)
    assert causal_lm_parts(torch.nn.Linear(2, 2)) == (None, None)


def test_keeping_every_position_is_the_plain_forward(counted):
    model = _llama(4, "sdpa").eval()
    ids, mask, positions = _inputs(padded=True)
    trunk, _ = causal_lm_parts(model)
    with torch.no_grad():
        torch.testing.assert_close(last_hidden_states(trunk, ids, mask, positions, 18),
                                   trunk(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state)
    assert counted == []


def test_peft_wrapped_policy_trims_through_its_adapters(counted):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_llama(2, "sdpa"), LoraConfig(r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                         init_lora_weights=False))
    ids, mask, positions = _inputs(padded=True)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=5).logits[:, :-1]
        got = response_logits(model, ids, mask, positions, 4)
        with model.disable_adapter():
            reference = response_logits(model, ids, mask, positions, 4)
    assert counted == [1, 1]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(got, reference, atol=1e-3)  # the adapters are in the trimmed path
