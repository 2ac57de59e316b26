"""PPO's losses and diagnostics as pure torch functions (Schulman et al. 2017; Huang et al. 2024).

Shapes: (B, T) over response tokens; `mask` is 1 on real tokens. Losses are masked token means.
"""

from __future__ import annotations

import torch

from heal.ppo.advantages import masked_mean, masked_var


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate objective, as a loss to minimise:

        ratio_t = exp(log π(a_t) − log π_old(a_t))
        L = mean_t max(−A_t · ratio_t,  −A_t · clip(ratio_t, 1 − ε, 1 + ε))

    Also returns clipfrac (share of tokens where the clipped term is the larger one, i.e. the gradient is cut),
    approxkl = ½·mean((log ratio)²) and the mean ratio.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    stats = {"clipfrac": masked_mean((clipped > unclipped).float(), mask),
             "approxkl": 0.5 * masked_mean(log_ratio ** 2, mask),
             "ratio": masked_mean(ratio, mask)}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss: the new value may move at most ε_v from the rollout's value before the loss stops
    rewarding it:

        V_clip = V_old + clip(V − V_old, −ε_v, ε_v)
        L_V = ½ · mean_t max((V − R)², (V_clip − R)²)

    Returns (loss, clipfrac: share of tokens where the clipped error is the larger one).
    """
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    return loss, masked_mean((clipped_error > unclipped_error).float(), mask)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = logsumexp(z) − Σ softmax(z)·z per position: (B, T, V) → (B, T)."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)


def entropy_from_logprobs(logprobs: torch.Tensor) -> torch.Tensor:
    """H = −Σ p·log p per position from a log-softmax already computed: (B, T, V) → (B, T). Reusing the training
    step's log-softmax halves the metric's cost against entropy_from_logits (CPU, (16, 32, 4096): 40 vs 75 ms)."""
    return -(logprobs.exp() * logprobs).sum(-1)


def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(z)[token] per position: logits (B, T, V), tokens (B, T) → (B, T).

    The fused log_softmax kernel, then a gather. (z[token] − logsumexp(z), which never writes the (B, T, V)
    log-softmax, was measured 2.6× slower forward + backward on CPU at (16, 32, 4096): 117 vs 44 ms.)"""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 − Var(R − V) / Var(R): 1 when the value model predicts the returns exactly, ≤ 0 when it is no better than
    predicting their mean."""
    var_returns = masked_var(returns, mask, unbiased=False)
    return 1.0 - masked_var(returns - values, mask, unbiased=False) / var_returns.clamp(min=1e-8)
