"""TRL's SFTTrainer with HEAL's bookkeeping: per-rank counts of what each process trained on (metrics.jsonl and the
model card are heal.runs').

Nothing about the optimisation changes: loss, data collation, packing, PEFT, DDP/FSDP/DeepSpeed are TRL's and
accelerate's. The per-rank counts exist so a multi-process run can show that every rank trained (heal_run.json,
`distributed.ranks`) and so the throughput benchmark can count tokens.
"""

from __future__ import annotations

from trl import SFTTrainer

from heal.runs import NoTrlModelCard


class HealSFTTrainer(NoTrlModelCard, SFTTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # sequences, tokens (padding excluded) and completion tokens (the ones in the loss) this rank trained on
        # (positions: tokens + padding, what the model actually computed on)
        self.rank_stats = {"micro_batches": 0, "sequences": 0, "tokens": 0, "positions": 0, "loss_tokens": 0}

    def training_step(self, model, inputs, *args, **kwargs):
        self._count(inputs)
        return super().training_step(model, inputs, *args, **kwargs)

    def _count(self, inputs: dict) -> None:
        ids = inputs["input_ids"]  # (B, T); padding-free/packed: (1, total tokens)
        stats = self.rank_stats
        stats["micro_batches"] += 1
        stats["positions"] += int(ids.numel())
        if "attention_mask" in inputs:
            stats["sequences"] += int(ids.shape[0])
            stats["tokens"] += int(inputs["attention_mask"].sum())
        else:  # sequences are flattened; each one starts at position 0
            positions = inputs["position_ids"]
            stats["sequences"] += int((positions == 0).sum())
            stats["tokens"] += int(positions.numel())
        stats["loss_tokens"] += int((inputs["labels"][..., 1:] != -100).sum())
