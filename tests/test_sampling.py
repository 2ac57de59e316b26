"""Sampling is what is scored: PPO and GRPO sample with one explicit config, whatever the model's generation_config.

The model here carries the kind of generation_config a Hub chat model ships (repetition_penalty 1.3, top_k 5,
no_repeat_ngram_size 2). Had generate() used it, the rollout's tokens would come from a distribution other than
softmax(logits / temperature), the one PPO and GRPO compute log-probabilities from.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

TEMPERATURE = 0.7


@pytest.fixture()
def opinionated_policy(tiny_model_dir):
    from heal.models.loading import load_policy

    model, tokenizer, _ = load_policy(str(tiny_model_dir))
    model.generation_config.repetition_penalty = 1.3
    model.generation_config.top_k = 5
    model.generation_config.no_repeat_ngram_size = 2
    model.generation_config.do_sample = True
    return model.eval(), tokenizer


def _queries(tokenizer):
    from heal.ppo.rollout import encode_prompts, left_pad

    records = [{"prompt": "Does aspirin lower the risk of stroke?"}, {"prompt": "Is sleep good for memory?"}]
    return left_pad(encode_prompts(tokenizer, records, None, 64), tokenizer.pad_token_id)


def _scored(policy, tokenizer, query, query_mask, response, response_mask):
    """heal ppo's scoring pass (rollout.forward_pass): log π_old of the sampled tokens."""
    from heal.ppo.models import PolicyAndValue, load_value_model
    from heal.ppo.rollout import forward_pass

    args = SimpleNamespace(trust_remote_code=False, dtype=None, use_peft=False)
    value = load_value_model(policy.name_or_path, tokenizer, args, from_policy=True)
    logprobs, _, _ = forward_pass(PolicyAndValue(policy, value), policy, query, query_mask, response, response_mask,
                                  TEMPERATURE)
    return logprobs


def test_ppo_rollout_logprobs_equal_the_scoring_pass(opinionated_policy):
    from heal.models.prompting import stop_token_ids
    from heal.ppo.rollout import generate, truncate_after_stop

    policy, tokenizer = opinionated_policy
    query, query_mask = _queries(tokenizer)
    stops = stop_token_ids(tokenizer)
    torch.manual_seed(0)
    raw, sampled = generate(policy, query, query_mask, 12, TEMPERATURE, stops, tokenizer.pad_token_id,
                            with_logprobs=True)
    response, mask, _ = truncate_after_stop(raw, stops, tokenizer.pad_token_id)
    scored = _scored(policy, tokenizer, query, query_mask, response, mask)
    assert mask.sum() > 10
    assert torch.allclose(sampled * mask, scored, atol=1e-5)
    # The model's own settings still exist (only set aside while HEAL generates) …
    assert policy.generation_config.repetition_penalty == 1.3
    # … and had they been used, the sampled distribution would differ from the scored one: the check has teeth.
    torch.manual_seed(0)
    out = policy.generate(input_ids=query, attention_mask=query_mask, max_new_tokens=12, temperature=TEMPERATURE,
                          output_scores=True, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
    theirs = out.sequences[:, query.shape[1]:]
    logp = torch.log_softmax(torch.stack(out.scores, 1), -1).gather(-1, theirs[..., None]).squeeze(-1)
    theirs_mask = torch.ones_like(theirs)
    assert not torch.allclose(logp, _scored(policy, tokenizer, query, query_mask, theirs, theirs_mask), atol=1e-3)


def test_grpo_samples_from_the_distribution_it_scores(opinionated_policy, tmp_path):
    """The GenerationConfig TRL's GRPOTrainer builds from HEAL's defaults, on the model as `heal grpo` loads it."""
    from transformers import GenerationConfig

    from heal.grpo.config import HealGRPOConfig
    from heal.grpo.train import check_sampling
    from heal.models.sampling import ids_only

    policy, tokenizer = opinionated_policy
    policy.generation_config = ids_only(policy.generation_config)  # what heal.grpo.train._load does
    args = HealGRPOConfig(output_dir=str(tmp_path), temperature=TEMPERATURE, report_to="none")
    check_sampling(args)
    # trl.GRPOTrainer (transformers path): these kwargs, nothing else, then generate(generation_config=…)
    trl_config = GenerationConfig(max_new_tokens=12, do_sample=True, pad_token_id=tokenizer.pad_token_id,
                                  eos_token_id=tokenizer.eos_token_id, temperature=args.temperature, top_p=args.top_p,
                                  top_k=args.top_k, min_p=args.min_p, repetition_penalty=args.repetition_penalty,
                                  output_scores=True, return_dict_in_generate=True)
    query, query_mask = _queries(tokenizer)
    out = policy.generate(input_ids=query, attention_mask=query_mask, generation_config=trl_config)
    response = out.sequences[:, query.shape[1]:]
    sampled = torch.log_softmax(torch.stack(out.scores, 1), -1).gather(-1, response[..., None]).squeeze(-1)
    scored = _scored(policy, tokenizer, query, query_mask, response, torch.ones_like(response))
    assert torch.allclose(sampled, scored, atol=1e-5)


@pytest.mark.parametrize("flag", [{"top_k": 50}, {"repetition_penalty": 1.2}, {"top_p": 0.9}])
def test_grpo_refuses_sampling_flags_that_change_the_distribution(flag, tmp_path):
    from heal.errors import HealError
    from heal.grpo.config import HealGRPOConfig
    from heal.grpo.train import check_sampling

    with pytest.raises(HealError, match=f"--{next(iter(flag))}"):
        check_sampling(HealGRPOConfig(output_dir=str(tmp_path), report_to="none", **flag))


def test_eval_generation_ignores_the_models_sampling_defaults(opinionated_policy):
    """HFBackend (eval, redteam, label, serve) is greedy unless asked: the model's do_sample/top_k do not apply."""
    from heal.models.generate import HFBackend

    policy, tokenizer = opinionated_policy
    backend = HFBackend(policy, tokenizer, batch_size=2, progress=False)
    texts = [backend.render("Is sleep good for memory?")] * 2
    first = [g.text for g in backend.generate(texts, max_new_tokens=10)]
    torch.manual_seed(123)
    again = [g.text for g in backend.generate(texts, max_new_tokens=10)]
    from heal.models.sampling import ids_only

    policy.generation_config = ids_only(policy.generation_config)  # the same model with no opinions
    assert first == again == [g.text for g in backend.generate(texts, max_new_tokens=10)]
