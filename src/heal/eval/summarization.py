"""Summary evaluation (MIMIC BHC/DI, ACI-Bench notes): ROUGE-1/2/L, length statistics, optional model similarity.

Predictions are generated greedily from each record's prompt (rendered by heal.models.prompting) and compared with
its `reference` (or `completion`). ROUGE is rouge-score's F-measure with Porter stemming, averaged over items;
length statistics are words per prediction and per reference, and the mean prediction/reference length ratio (a
model that copies the input or stops at once shows here first). BERTScore and embedding similarity run only when a
local model folder is given (heal.eval.similarity).
"""

from __future__ import annotations

import statistics

from heal.eval import metrics
from heal.eval.metrics import ROUGE_TYPES, key


def reference_of(record: dict) -> str:
    return str(record.get("reference") or record.get("completion") or "")


def length_ratio(predictions: list[str], references: list[str]) -> float:
    """Mean of prediction words / reference words over items with a non-empty reference."""
    ratios = [metrics.word_count(p) / metrics.word_count(r) for p, r in zip(predictions, references)
              if metrics.word_count(r)]
    return statistics.fmean(ratios) if ratios else 0.0


def score(predictions: list[str], references: list[str], task: str) -> tuple[dict, list[dict]]:
    """(flat metrics, per-item ROUGE rows) for predictions against references."""
    rows = metrics.rouge_scores(predictions, references)
    flat = {key("summary", k): v for k, v in metrics.mean_of(rows, ROUGE_TYPES).items()}
    for name, texts in (("prediction", predictions), ("reference", references)):
        flat.update({key("summary", "length", name, k): v for k, v in metrics.length_stats(texts).items()})
    flat[key("summary", "length", "ratio")] = length_ratio(predictions, references)
    flat[key("summary", "task")] = task
    flat[key("summary", "n")] = len(predictions)
    return flat, rows


def evaluate(backend, records: list[dict], task: str, max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0, embedding_model: str | None = None, bertscore_model: str | None = None,
             bertscore_layer: int | None = None) -> dict:
    texts = [backend.render(r["prompt"]) for r in records]
    outs = backend.generate(texts, max_new_tokens, temperature, top_p, desc="summarising")
    predictions = [o.text for o in outs]
    references = [reference_of(r) for r in records]
    flat, rows = score(predictions, references, task)
    flat[key("summary", "finished_rate")] = metrics.share(o.finish_reason == "stop" for o in outs)
    items = [{"id": r.get("id", i), "prediction": p, "reference": ref, **{k: round(v, 4) for k, v in row.items()},
              "prediction_words": metrics.word_count(p), "reference_words": metrics.word_count(ref)}
             for i, (r, p, ref, row) in enumerate(zip(records, predictions, references, rows))]
    if embedding_model:
        from heal.eval.similarity import embedding_similarity

        values = embedding_similarity(predictions, references, embedding_model)
        flat[key("summary", "embedding_similarity")] = statistics.fmean(values) if values else 0.0
        for item, value in zip(items, values):
            item["embedding_similarity"] = round(value, 4)
    if bertscore_model:
        from heal.eval.similarity import bertscore

        values = bertscore(predictions, references, bertscore_model, bertscore_layer)
        flat.update({key("summary", "bertscore", k): statistics.fmean(v[k] for v in values) if values else 0.0
                     for k in ("precision", "recall", "f1")})
        for item, value in zip(items, values):
            item["bertscore_f1"] = round(value["f1"], 4)
    return {"metrics": flat, "items": items, "predictions": predictions, "references": references}
