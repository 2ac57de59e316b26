"""Which prompts each process rolls out at each PPO update (the prompts themselves: heal.rl.prompts).

Order: update u of a run reads the prompts at positions [u·B, (u+1)·B) of an endless stream made of seeded shuffles
of the training prompts (one shuffle per pass), B = batch_size; process r takes its own local_batch_size slice. The
order depends only on (seed, u), so a resumed run reads exactly the prompts the uninterrupted run would have read.
"""

from __future__ import annotations

import random


def batch_indices(n_prompts: int, update: int, batch_size: int, rank: int, local_batch_size: int,
                  seed: int) -> list[int]:
    """Indices of the prompts process `rank` rolls out at update `update` (see the module docstring)."""
    start = update * batch_size + rank * local_batch_size
    out = []
    for position in range(start, start + local_batch_size):
        epoch, offset = divmod(position, n_prompts)
        out.append(_permutation(n_prompts, seed, epoch)[offset])
    return out


_PERMUTATIONS: dict[tuple[int, int, int], list[int]] = {}


def _permutation(n: int, seed: int, epoch: int) -> list[int]:
    key = (n, seed, epoch)
    if key not in _PERMUTATIONS:
        order = list(range(n))
        random.Random(f"heal-ppo-{seed}-{epoch}").shuffle(order)
        _PERMUTATIONS[key] = order
    return _PERMUTATIONS[key]
