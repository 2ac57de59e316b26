"""PubMedQA evaluation: accuracy and macro-F1 (the official metrics) in two modes, plus robustness.

- generate: greedy generation, then the first yes/no/maybe in the answer (heal.data.pubmedqa.parse_decision); an
  answer with none counts as wrong (`unparsed_rate` says how often).
- loglikelihood: the label whose answer text ("Yes." / "No." / "Maybe.", exactly how `heal prep` starts the SFT
  completion) is most likely after the prompt, as lm-evaluation-harness scores multiple choice. Needs no parsing and
  one forward pass per item.

Both use the prompt rendered by heal.models.prompting, as SFT trained on it. When both run on the HF backend, they
share one pass over each prompt (HFBackend.generate_and_score): the prompt is most of the cost, as PubMedQA's abstracts
run to hundreds of tokens.
"""

from __future__ import annotations

from heal.data.pubmedqa import format_completion, parse_decision
from heal.data.schema import PUBMEDQA_LABELS
from heal.eval import metrics
from heal.eval.metrics import UNPARSED, key
from heal.eval.robustness import perturbed_prompt

LABELS = list(PUBMEDQA_LABELS)
CHOICES = {label: format_completion(label, "") for label in LABELS}  # {"yes": "Yes.", …}: the SFT target's start


def predict(backend, prompts: list[str], mode: str, max_new_tokens: int, temperature: float = 0.0,
            top_p: float = 1.0, desc: str = "") -> tuple[list[str | None], list[dict]]:
    """(predicted label per prompt, per-item details) for one scoring mode."""
    texts = [backend.render(p) for p in prompts]
    if mode == "generate":
        return _from_generations(backend.generate(texts, max_new_tokens, temperature, top_p,
                                                  desc=desc or "generating"))
    return _from_scores(backend.choice_loglikelihoods(texts, list(CHOICES.values()), desc=desc or "scoring"))


def _from_generations(outs) -> tuple[list[str | None], list[dict]]:
    return [parse_decision(o.text) for o in outs], [{"generation": o.text, "finish_reason": o.finish_reason}
                                                    for o in outs]


def _from_scores(scores: list[list[float]]) -> tuple[list[str | None], list[dict]]:
    return ([metrics.argmax_label(dict(zip(LABELS, row))) for row in scores],
            [{"loglikelihood": dict(zip(LABELS, [round(s, 4) for s in row]))} for row in scores])


def predict_both(backend, prompts: list[str], max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0) -> dict[str, tuple[list[str | None], list[dict]]]:
    """`predict` for both modes from one pass over each prompt (HFBackend.generate_and_score)."""
    texts = [backend.render(p) for p in prompts]
    outs, scores = backend.generate_and_score(texts, list(CHOICES.values()), max_new_tokens, temperature, top_p,
                                              desc="generate + loglikelihood")
    return {"generate": _from_generations(outs), "loglikelihood": _from_scores(scores)}


def score(gold: list[str], preds: list[str | None], prefix: str) -> dict:
    """Flat metrics for one set of predictions, keys under `prefix` (e.g. 'pubmedqa/generate')."""
    return {
        key(prefix, "accuracy"): metrics.accuracy(gold, preds),
        key(prefix, "macro_f1"): metrics.macro_f1(gold, preds, LABELS),
        key(prefix, "unparsed_rate"): metrics.share(p is None for p in preds),
        key(prefix, "n"): len(gold),
    }


def evaluate(backend, records: list[dict], modes: list[str], max_new_tokens: int, temperature: float = 0.0,
             top_p: float = 1.0) -> dict:
    """{'metrics': flat, 'per_class': {mode: …}, 'confusion': {mode: matrix}, 'predictions': {mode: labels},
    'items': per-item rows}."""
    gold = [str(r["label"]).strip().lower() for r in records]
    prompts = [r["prompt"] for r in records]
    result = {"metrics": {}, "per_class": {}, "confusion": {}, "predictions": {}}
    items = [{"id": r.get("id", i), "label": g} for i, (r, g) in enumerate(zip(records, gold))]
    both = {"generate", "loglikelihood"} <= set(modes) and hasattr(backend, "generate_and_score")
    shared = predict_both(backend, prompts, max_new_tokens, temperature, top_p) if both else {}
    for mode in modes:
        preds, details = shared.get(mode) or predict(backend, prompts, mode, max_new_tokens, temperature, top_p,
                                                      desc=mode)
        result["metrics"].update(score(gold, preds, key("pubmedqa", mode)))
        result["per_class"][mode] = metrics.per_class(gold, preds, LABELS)
        result["confusion"][mode] = metrics.confusion(gold, preds, LABELS)
        result["predictions"][mode] = preds
        for item, pred, detail in zip(items, preds, details):
            item[f"{mode}/prediction"] = pred if pred is not None else UNPARSED
            item.update({f"{mode}/{k}": v for k, v in detail.items()})
    result["items"] = items
    return result


def robustness(backend, records: list[dict], clean_preds: list[str | None], mode: str, perturbations: list[str],
               max_new_tokens: int, seed: int = 0, temperature: float = 0.0) -> dict:
    """Per perturbation: accuracy, drop from clean accuracy, and answer consistency with the clean predictions."""
    gold = [str(r["label"]).strip().lower() for r in records]
    clean_accuracy = metrics.accuracy(gold, clean_preds)
    table, predictions = {}, {}
    for name in perturbations:
        prompts = [perturbed_prompt(name, r, seed) for r in records]
        preds, _ = predict(backend, prompts, mode, max_new_tokens, temperature, desc=name)
        accuracy = metrics.accuracy(gold, preds)
        table[name] = {"accuracy": accuracy, "drop": clean_accuracy - accuracy,
                       "consistency": metrics.consistency(clean_preds, preds)}
        predictions[name] = preds
    flat = {key("robustness", name, k): v for name, row in table.items() for k, v in row.items()}
    flat[key("robustness", "clean", "accuracy")] = clean_accuracy
    flat[key("robustness", "mode")] = mode
    return {"metrics": flat, "table": table, "predictions": predictions, "clean_accuracy": clean_accuracy}
