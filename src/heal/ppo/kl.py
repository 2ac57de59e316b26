"""The KL penalty: per-token estimators of KL(π ‖ π_ref) and the controller of its coefficient β.

Estimators (Schulman, "Approximating KL divergence", 2020), with log r = log π_ref(a) − log π(a) for the sampled a:

    k1 = −log r = log π(a) − log π_ref(a)          unbiased, high variance, can be negative per token
    k3 = (r − 1) − log r                             unbiased, lower variance, never negative

Controllers: fixed β (`kl_coef`), or adaptive (Ziegler et al. 2019) when `kl_target` is set:

    e = clip(KL / target − 1, −0.2, 0.2);   β ← β · (1 + e · n / horizon)

where KL is the batch's mean summed KL per response and n the number of rollouts in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ESTIMATORS = ("k1", "k3")


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token KL estimate (B, T) from the sampled tokens' log-probabilities under π and π_ref (both (B, T))."""
    log_ratio = ref_logprobs - logprobs  # log r
    if estimator == "k1":
        return -log_ratio
    if estimator == "k3":
        return torch.expm1(log_ratio) - log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; use one of {ESTIMATORS}")


@dataclass
class FixedKLController:
    value: float

    def update(self, current_kl: float, n_steps: int) -> None:
        """A fixed β ignores the measured KL."""


@dataclass
class AdaptiveKLController:
    """β that grows when the KL is above `target` and shrinks when below (proportional control, error clipped)."""

    value: float
    target: float
    horizon: float

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def make_kl_controller(kl_coef: float, kl_target: float | None, kl_horizon: float):
    if kl_target is None:
        return FixedKLController(kl_coef)
    return AdaptiveKLController(kl_coef, kl_target, kl_horizon)
