"""Score answers with a trained reward model, normalised so that reference answers average 0 (std 1).

    from heal.reward.scoring import RewardScorer
    scorer = RewardScorer("models/reward_model/pubmedqa")
    rewards = scorer.score(prompts, responses)          # list[float], normalised

The normalisation measured at the end of `heal reward` is stored in the model's config.json under
`heal_reward_normalization` ({"mean", "std", "measured_on"}); a raw score r becomes (r − mean) / std. Texts are
formatted exactly as in training (heal.models.prompting).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

NORMALIZATION_KEY = "heal_reward_normalization"


def normalization(config) -> tuple[float, float]:
    stats = getattr(config, NORMALIZATION_KEY, None) or {}
    return float(stats.get("mean", 0.0)), float(stats.get("std", 1.0)) or 1.0


def pair_texts(tokenizer, prompts: Sequence[str], responses: Sequence[str]) -> list[str]:
    """The exact text a reward model reads for (prompt, response): the training format."""
    from heal.models.prompting import format_completion, format_prompt

    return [format_prompt(tokenizer, p) + format_completion(tokenizer, p, r) for p, r in zip(prompts, responses)]


@contextmanager
def reading_the_end(tokenizer):
    """How a reward model reads text, for the duration of the block: padded on the right (the head reads the last
    real token) and cut from the left (the answer is at the end: never cut it off). The tokenizer's own sides come
    back afterwards: it may be one that is saved or used elsewhere."""
    sides = tokenizer.padding_side, tokenizer.truncation_side
    tokenizer.padding_side, tokenizer.truncation_side = "right", "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = sides


def raw_scores(model, tokenizer, texts: Sequence[str], batch_size: int = 16, max_length: int = 2048) -> list[float]:
    """The model's scalar output for each text, read as `reading_the_end` says."""
    import torch

    max_length = min(max_length, getattr(model.config, "max_position_embeddings", None) or max_length)
    out: list[float] = []
    model.eval()
    with torch.no_grad(), reading_the_end(tokenizer):
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), return_tensors="pt", padding=True,
                              truncation=True, max_length=max_length).to(model.device)
            out.extend(model(**batch).logits[:, 0].float().tolist())
    return out


class RewardScorer:
    def __init__(self, path: str, batch_size: int = 16):
        from transformers import AutoModelForSequenceClassification

        from heal.models.loading import load_tokenizer, model_location

        location = model_location(path, "--reward_model_path")
        self.tokenizer = load_tokenizer(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(location).eval()
        self.mean, self.std = normalization(self.model.config)
        self.batch_size = batch_size

    def score(self, prompts: Sequence[str], responses: Sequence[str], normalize: bool = True) -> list[float]:
        raw = raw_scores(self.model, self.tokenizer, pair_texts(self.tokenizer, prompts, responses), self.batch_size)
        return [(r - self.mean) / self.std for r in raw] if normalize else raw
