"""From a rollout's scores to advantages: per-token rewards, masked statistics, whitening, GAE. Pure torch functions.

Shapes: B = rollouts in the batch, T = response length (`response_length`). `mask` is 1 on the response's real tokens
(up to and including its stop token) and 0 on the padding after it; every function below ignores masked positions.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ x·m / Σ m (over `dim`, or over everything)."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the unmasked entries: Σ m·(x − μ)² / (n − 1) (Bessel-corrected when `unbiased`)."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − μ) / √(σ² + ε) over the unmasked entries; with `shift_mean=False` the mean is added back, so only
    the scale changes (reward whitening keeps the sign of the rewards). Masked entries come out as 0."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last real token: (B, T) → (B,). A row with no real token gives 0."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask.long()).amax(dim=1)


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Per-token reward (B, T): r_t = −β·kl_t on every real token, plus the sequence's score at its last real token.

        r_t = −β · kl_t + 1[t = last] · score

    scores: (B,), kl: (B, T) per-token KL estimate (heal.ppo.kl), mask: (B, T).
    """
    rewards = -kl_coef * kl * mask
    last = last_token_index(mask)
    rows = torch.arange(scores.shape[0], device=scores.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), right to left over the response:

        δ_t = r_t + γ·V_{t+1} − V_t            (V after the last real token is 0: the episode has ended)
        A_t = δ_t + γ·λ·A_{t+1}
        R_t = A_t + V_t                          (the value target)

    rewards, values, mask: (B, T) → (advantages, returns), both (B, T), 0 on padding.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(rewards[:, 0])
    length = rewards.shape[1]
    for t in reversed(range(length)):
        next_value = values[:, t + 1] if t + 1 < length else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last_gae = delta + gamma * lam * last_gae
        advantages[:, t] = last_gae
    advantages = advantages * mask
    return advantages, (advantages + values) * mask
