"""PPO's pure functions against values worked out by hand (heal.ppo.advantages, losses, kl, rollout masking, data
order, batch sizes). No model is loaded: these run in milliseconds."""

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from heal.errors import HealError
from heal.ppo.advantages import gae, last_token_index, masked_mean, masked_var, masked_whiten, token_rewards
from heal.ppo.data import batch_indices
from heal.ppo.kl import AdaptiveKLController, FixedKLController, kl_penalty
from heal.ppo.losses import (entropy_from_logits, entropy_from_logprobs, explained_variance, logprobs_of, policy_loss,
                             value_loss)
from heal.ppo.rollout import left_pad, truncate_after_stop
from heal.ppo.setup import batch_sizes

t = torch.tensor


def test_gae_on_a_three_step_episode():
    # r = [0, 0, 1], V = [0.5, 0.6, 0.7], γ = 1, λ = 0.5:
    # δ2 = 1 − 0.7 = 0.3;  δ1 = 0 + 0.7 − 0.6 = 0.1;  δ0 = 0 + 0.6 − 0.5 = 0.1
    # A2 = 0.3;  A1 = 0.1 + 0.5·0.3 = 0.25;  A0 = 0.1 + 0.5·0.25 = 0.225;  R = A + V = [0.725, 0.85, 1.0]
    rewards, values, mask = t([[0.0, 0.0, 1.0]]), t([[0.5, 0.6, 0.7]]), t([[1.0, 1.0, 1.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert advantages.tolist()[0] == pytest.approx([0.225, 0.25, 0.3])
    assert returns.tolist()[0] == pytest.approx([0.725, 0.85, 1.0])


def test_gae_discounts_and_ignores_everything_after_the_last_real_token():
    # γ = 0.9, λ = 0.8 (γλ = 0.72): δ2 = 0.3, δ1 = 0.9·0.7 − 0.6 = 0.03, δ0 = 0.9·0.6 − 0.5 = 0.04
    # A2 = 0.3, A1 = 0.03 + 0.72·0.3 = 0.246, A0 = 0.04 + 0.72·0.246 = 0.21712. The 4th position is padding: its
    # reward and value (99) must not leak into the episode, and its advantage and return are 0.
    rewards, values = t([[0.0, 0.0, 1.0, 99.0]]), t([[0.5, 0.6, 0.7, 99.0]])
    mask = t([[1.0, 1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    assert advantages.tolist()[0] == pytest.approx([0.21712, 0.246, 0.3, 0.0])
    assert returns.tolist()[0] == pytest.approx([0.71712, 0.846, 1.0, 0.0])


def test_masked_statistics_and_whitening():
    x, mask = t([[2.0, 4.0, 6.0, 100.0]]), t([[1.0, 1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == pytest.approx(4.0)
    assert masked_var(x, mask).item() == pytest.approx(4.0)  # (4 + 0 + 4) / (3 − 1)
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(8 / 3)
    # (x − 4) / 2 on the real entries, 0 on padding; without the mean shift the mean (4) is added back
    assert masked_whiten(x, mask).tolist()[0] == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    assert masked_whiten(x, mask, shift_mean=False).tolist()[0] == pytest.approx([3.0, 4.0, 5.0, 0.0], abs=1e-6)
    assert masked_mean(t([[1.0, 3.0], [5.0, 7.0]]), t([[1.0, 0.0], [1.0, 1.0]]), dim=1).tolist() == [1.0, 6.0]


def test_per_token_rewards_put_the_score_on_the_last_real_token():
    # r = −β·kl on real tokens (β = 0.5), the score (2.0) added at the last real token, 0 on padding
    kl, mask = t([[0.1, 0.2, 0.3, 9.0]]), t([[1.0, 1.0, 1.0, 0.0]])
    rewards = token_rewards(t([2.0]), kl, mask, kl_coef=0.5)
    assert rewards.tolist()[0] == pytest.approx([-0.05, -0.1, 1.85, 0.0])
    assert last_token_index(t([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])).tolist() == [1, 3, 0]


def test_k1_and_k3_estimators():
    # token 1: π = 0.5, π_ref = 0.25 → log r = log 0.5; k1 = log 2 = 0.6931; k3 = (0.5 − 1) + log 2 = 0.1931
    # token 2: π = 0.25, π_ref = 0.5 → log r = log 2; k1 = −0.6931 (k1 can be negative); k3 = 1 − log 2 = 0.3069
    logprobs, ref = t([[math.log(0.5), math.log(0.25)]]), t([[math.log(0.25), math.log(0.5)]])
    assert kl_penalty(logprobs, ref, "k1").tolist()[0] == pytest.approx([0.693147, -0.693147], abs=1e-6)
    assert kl_penalty(logprobs, ref, "k3").tolist()[0] == pytest.approx([0.193147, 0.306853], abs=1e-6)
    assert kl_penalty(ref, ref, "k3").abs().max().item() == 0.0
    with pytest.raises(ValueError):
        kl_penalty(logprobs, ref, "k2")


def test_clipped_policy_loss():
    # ratios [1.5, 0.5, 1.1, 0.5], advantages [1, 1, −2, −1], ε = 0.2; the 5th token is padding
    #   1.5,  A=1:  max(−1.5, −1.2) = −1.2 (clipped)     0.5, A=1:  max(−0.5, −0.8) = −0.5
    #   1.1,  A=−2: max(2.2, 2.2)   = 2.2                0.5, A=−1: max(0.5, 0.8)   = 0.8 (clipped)
    # loss = (−1.2 − 0.5 + 2.2 + 0.8) / 4 = 0.325; clipfrac = 2/4; approxkl = ½·mean(log² ratio)
    ratios = [1.5, 0.5, 1.1, 0.5, 50.0]
    logprobs, old = t([[math.log(r) for r in ratios]]), torch.zeros(1, 5)
    advantages, mask = t([[1.0, 1.0, -2.0, -1.0, 7.0]]), t([[1.0, 1.0, 1.0, 1.0, 0.0]])
    loss, stats = policy_loss(logprobs, old, advantages, mask, cliprange=0.2)
    assert loss.item() == pytest.approx(0.325)
    assert stats["clipfrac"].item() == pytest.approx(0.5)
    expected_kl = 0.5 * sum(math.log(r) ** 2 for r in ratios[:4]) / 4
    assert stats["approxkl"].item() == pytest.approx(expected_kl)
    assert stats["ratio"].item() == pytest.approx(sum(ratios[:4]) / 4)


def test_clipped_value_loss():
    # old V [0, 1], new V [0.5, 0.9], returns [1, 0], ε_v = 0.2
    #   token 1: V_clip = 0 + clip(0.5) = 0.2; max((0.5 − 1)², (0.2 − 1)²) = max(0.25, 0.64) = 0.64 (clipped)
    #   token 2: V_clip = 1 + clip(−0.1) = 0.9; (0.9 − 0)² = 0.81 either way
    # loss = ½ · (0.64 + 0.81) / 2 = 0.3625; clipfrac = 1/2
    loss, clipfrac = value_loss(t([[0.5, 0.9]]), t([[0.0, 1.0]]), t([[1.0, 0.0]]), t([[1.0, 1.0]]),
                                cliprange_value=0.2)
    assert loss.item() == pytest.approx(0.3625)
    assert clipfrac.item() == pytest.approx(0.5)


def test_entropy_logprobs_and_explained_variance():
    assert entropy_from_logits(torch.zeros(1, 1, 4)).item() == pytest.approx(math.log(4))
    assert entropy_from_logits(t([[[0.0, -1e4]]])).item() == pytest.approx(0.0, abs=1e-6)
    assert logprobs_of(torch.zeros(1, 2, 4), t([[0, 3]])).tolist()[0] == pytest.approx([-math.log(4)] * 2)
    returns, mask = t([[1.0, 2.0, 3.0]]), torch.ones(1, 3)
    assert explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 3), 2.0), returns, mask).item() == pytest.approx(0.0)


def test_truncation_masks_everything_after_the_first_stop_token():
    response = t([[5, 2, 7, 2], [5, 6, 7, 8], [2, 9, 9, 9], [5, 3, 2, 9]])
    cut, mask, has_stop = truncate_after_stop(response, stop_ids=[2, 3], pad_id=0)
    assert cut.tolist() == [[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0], [5, 3, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert has_stop.tolist() == [True, False, True, True]
    ids, pad_mask = left_pad([[7, 8, 9], [4]], pad_id=0)
    assert ids.tolist() == [[7, 8, 9], [0, 0, 4]] and pad_mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_kl_controllers():
    fixed = FixedKLController(0.05)
    fixed.update(100.0, 64)
    assert fixed.value == 0.05
    # KL above target: error clipped to +0.2 → β·(1 + 0.2·100/10000); below: −0.2
    high = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    high.update(12.0, 100)
    assert high.value == pytest.approx(0.1002)
    low = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    low.update(3.0, 100)
    assert low.value == pytest.approx(0.0998)
    near = AdaptiveKLController(0.1, target=6.0, horizon=100)
    near.update(6.6, 10)  # error 0.1 → β·(1 + 0.1·10/100)
    assert near.value == pytest.approx(0.101)


def test_prompt_order_splits_ranks_and_covers_every_prompt_once_per_pass():
    n, local, world = 12, 3, 2  # batch 6: two updates per pass
    seen = [batch_indices(n, update, local * world, rank, local, seed=0) for update in (0, 1) for rank in (0, 1)]
    flat = [i for part in seen for i in part]
    assert sorted(flat) == list(range(n))  # one pass: every prompt once, no rank overlap
    assert batch_indices(n, 1, 6, 1, 3, seed=0) == seen[3]  # depends only on (seed, update, rank): resumable
    assert batch_indices(n, 2, 6, 0, 3, seed=0) != batch_indices(n, 0, 6, 0, 3, seed=0)  # a new shuffle per pass


def _args(**kw):
    defaults = dict(per_device_train_batch_size=4, gradient_accumulation_steps=2, num_mini_batches=2, max_steps=-1,
                    total_episodes=None, num_train_epochs=1.0)
    return SimpleNamespace(**{**defaults, **kw})


# TRL 1.12.0's batch sizes (trl/experimental/ppo/ppo_trainer.py, PPOTrainer.__init__, "calculate various batch
# sizes"), worked out by hand: local_batch_size = per_device × grad_accum; micro_batch_size = per_device × world;
# batch_size = local × world; mini_batch_size = batch / num_mini_batches; local_mini_batch_size = local /
# num_mini_batches; num_total_batches = ceil(total_episodes / batch_size), total_episodes = epochs × prompts if unset.
# (per_device, grad_accum, num_mini_batches, world, total_episodes, epochs, prompts) →
# (local_batch, micro_batch (all processes), batch, mini_batch, local_mini_batch, num_total_batches)
TRL_112_SIZES = [
    ((4, 2, 2, 2, None, 1.0, 100), (8, 8, 16, 8, 4, 7)),  # ceil(100 / 16) = 7
    ((16, 1, 1, 1, 1000, 1.0, 50), (16, 16, 16, 16, 16, 63)),  # TRL's defaults: ceil(1000 / 16) = 63
    ((8, 4, 4, 4, 10000, 1.0, 50), (32, 32, 128, 32, 8, 79)),  # ceil(10000 / 128) = 79
    ((8, 1, 2, 1, None, 2.0, 45), (8, 8, 8, 4, 4, 12)),  # 90 episodes; minibatches of 4 < per_device 8
]


def _trl_args(per_device, accumulation, minis, _world, episodes, epochs, _prompts):
    return _args(per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation,
                 num_mini_batches=minis, total_episodes=episodes, num_train_epochs=epochs)


@pytest.mark.parametrize("config, expected", TRL_112_SIZES)
def test_batch_sizes_are_trl_112s(config, expected):
    sizes = batch_sizes(_trl_args(*config), world_size=config[3], n_prompts=config[6])
    got = (sizes.local_batch, sizes.micro_batch_all, sizes.batch, sizes.mini_batch, sizes.local_mini_batch,
           sizes.updates)
    assert got == expected
    # TRL's micro-batches are per_device rows sliced out of each minibatch (the whole minibatch when it is smaller);
    # HEAL takes one optimizer step per minibatch
    assert sizes.micro_batch == min(config[0], expected[4])
    assert sizes.accumulation == math.ceil(expected[4] / sizes.micro_batch)


def test_batch_size_knobs_trl_rejects_and_heals_extras():
    assert batch_sizes(_args(max_steps=3), 1, 100).updates == 3  # HEAL's --max_steps: updates
    with pytest.raises(HealError, match="num_mini_batches 3 must divide"):  # TRL: "must be a multiple of"
        batch_sizes(_args(num_mini_batches=3), 1, 10)


TRL_112_VENV = Path(__file__).resolve().parents[1] / "benchmarks/_work/trl-1.12.0-venv"
TRL_112_PYTHON = TRL_112_VENV / "bin/python"


@pytest.mark.skipif(not (TRL_112_VENV / "heal-pins.json").exists(),  # written once the venv is complete
                    reason="TRL 1.12.0's venv (made by benchmarks/ppo_vs_trl.py) absent")
def test_batch_sizes_equal_what_trl_112s_own_code_computes():
    """Runs the batch-size block of TRL 1.12.0's PPOTrainer.__init__ (its source, read with inspect) in TRL's venv on
    each configuration, and compares with HEAL's numbers."""
    import json
    import subprocess

    script = r"""
import inspect, json, math, sys, textwrap, types
from trl.experimental.ppo import ppo_trainer
lines = inspect.getsource(ppo_trainer.PPOTrainer.__init__).splitlines()
first = next(i for i, l in enumerate(lines) if "args.total_episodes is None" in l)
last = next(i for i, l in enumerate(lines) if "args.num_total_batches = math.ceil" in l)
block = textwrap.dedent(chr(10).join(lines[first:last + 3]))
out = []
for per_device, accumulation, minis, world, episodes, epochs, prompts in json.loads(sys.argv[1]):
    args = types.SimpleNamespace(per_device_train_batch_size=per_device, gradient_accumulation_steps=accumulation,
                                 num_mini_batches=minis, total_episodes=episodes, num_train_epochs=epochs,
                                 whiten_rewards=False)
    fake = type("Acc", (), {"num_processes": world, "__init__": lambda self, **kw: None})
    scope = {"args": args, "self": types.SimpleNamespace(train_dataset_len=prompts), "Accelerator": fake,
             "math": math, "exact_div": ppo_trainer.exact_div}
    exec(block, scope)
    out.append([args.local_batch_size, args.micro_batch_size, args.batch_size, args.mini_batch_size,
                args.local_mini_batch_size, args.num_total_batches])
print(json.dumps(out))
"""
    configs = [config for config, _ in TRL_112_SIZES]
    done = subprocess.run([str(TRL_112_PYTHON), "-c", script, json.dumps(configs)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    trl_numbers = [tuple(row) for row in json.loads(done.stdout.strip().splitlines()[-1])]
    assert trl_numbers == [expected for _, expected in TRL_112_SIZES]


def test_entropy_from_the_log_softmax_equals_entropy_from_the_logits():
    torch.manual_seed(0)
    logits = 3 * torch.randn(2, 5, 11)
    assert torch.allclose(entropy_from_logprobs(torch.log_softmax(logits, -1)), entropy_from_logits(logits), atol=1e-5)
    assert entropy_from_logprobs(torch.log_softmax(torch.zeros(1, 1, 8), -1)).item() == pytest.approx(math.log(8))
