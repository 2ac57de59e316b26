"""Held-out splits every training verb makes the same way (sft, reward, dpo, ppo, grpo)."""

from __future__ import annotations

import random

from heal.errors import HealError


def split_eval(records: list[dict], size: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Hold out a seeded random `size` (share if < 1, count if >= 1) of `records` for evaluation."""
    if size <= 0:
        return records, []
    count = int(round(size * len(records))) if size < 1 else int(size)
    count = max(1, count)
    if count >= len(records):
        raise HealError(f"--eval_split_size {size:g} leaves no training records out of {len(records)}; lower it or "
                        "pass --eval_dataset_path")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:count])
    return [r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held]
