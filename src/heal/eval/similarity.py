"""Model-based summary similarity, from a local model folder (no download): BERTScore and embedding cosine.

    heal eval … --bertscore_model ./models/roberta-large --embedding_model ./models/all-MiniLM-L6-v2

- BERTScore (Zhang et al. 2020, "BERTScore: Evaluating Text Generation with BERT"): contextual token embeddings of
  the prediction x and the reference y from one hidden layer, L2-normalised; recall = mean over reference tokens of
  the best cosine with any prediction token, precision the other way round, F1 their harmonic mean. No idf weighting
  and no baseline rescaling, so values are not comparable with the `bert-score` package's rescaled numbers.
- Embedding similarity: cosine of the mean-pooled last hidden states (what sentence-transformers' mean-pooling
  models such as all-MiniLM-L6-v2 compute).

Any transformers model folder works (encoder or decoder); the math is in small pure functions tested by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from heal.errors import HealError


def greedy_match(pred, ref) -> dict[str, float]:
    """BERTScore P/R/F1 from L2-normalised token embeddings pred (m, d) and ref (n, d) (torch tensors)."""
    sim = pred @ ref.T  # (m, n) cosine similarities
    precision = sim.max(dim=1).values.mean().item()
    recall = sim.max(dim=0).values.mean().item()
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def mean_pool(hidden, mask):
    """Mean of hidden (B, T, d) over the positions where mask (B, T) is 1: (B, d)."""
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


class Encoder:
    """A local transformers model used only for its hidden states."""

    def __init__(self, path: str, flag: str, max_length: int = 512):
        from transformers import AutoModel, AutoTokenizer

        if not Path(path).is_dir():
            raise HealError(f"{flag} {path}: not a local model folder; similarity models are never downloaded, "
                            "so pass a folder holding config.json and the tokenizer")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        except (OSError, ValueError) as e:
            raise HealError(f"{flag} {path}: cannot load it ({str(e).splitlines()[0]})") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.tokenizer.padding_side = "right"
        self.max_length = min(max_length, getattr(self.model.config, "max_position_embeddings", max_length))
        self.special = set(self.tokenizer.all_special_ids)

    def hidden(self, texts: Sequence[str], layer: int | None):
        """(hidden states (B, T, d) of `layer` (default: last), attention mask with special tokens removed)."""
        import torch

        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        with torch.inference_mode():
            out = self.model(**batch, output_hidden_states=True)
        states = out.hidden_states[layer if layer is not None else -1]
        content = batch["attention_mask"].clone()
        for special in self.special:
            content[batch["input_ids"] == special] = 0
        return states.float(), content

    def default_layer(self) -> int:
        return max(1, round(2 * self.model.config.num_hidden_layers / 3))


def bertscore(predictions: Sequence[str], references: Sequence[str], path: str, layer: int | None = None,
              batch_size: int = 16) -> list[dict[str, float]]:
    """Per-item BERTScore precision, recall, F1."""
    import torch.nn.functional as F

    encoder = Encoder(path, "--bertscore_model")
    layer = layer if layer is not None else encoder.default_layer()
    scores = []
    for start in range(0, len(predictions), batch_size):
        preds, refs = predictions[start:start + batch_size], references[start:start + batch_size]
        pred_states, pred_mask = encoder.hidden([p or " " for p in preds], layer)
        ref_states, ref_mask = encoder.hidden([r or " " for r in refs], layer)
        for i in range(len(preds)):
            x = F.normalize(pred_states[i][pred_mask[i].bool()], dim=-1)
            y = F.normalize(ref_states[i][ref_mask[i].bool()], dim=-1)
            scores.append(greedy_match(x, y) if len(x) and len(y) else
                          {"precision": 0.0, "recall": 0.0, "f1": 0.0})
    return scores


def embedding_similarity(predictions: Sequence[str], references: Sequence[str], path: str,
                         batch_size: int = 16) -> list[float]:
    """Per-item cosine of mean-pooled embeddings."""
    import torch.nn.functional as F

    encoder = Encoder(path, "--embedding_model")
    values: list[float] = []
    for start in range(0, len(predictions), batch_size):
        pred_states, pred_mask = encoder.hidden([p or " " for p in predictions[start:start + batch_size]], None)
        ref_states, ref_mask = encoder.hidden([r or " " for r in references[start:start + batch_size]], None)
        cosine = F.cosine_similarity(mean_pool(pred_states, pred_mask), mean_pool(ref_states, ref_mask), dim=-1)
        values.extend(cosine.tolist())
    return values
