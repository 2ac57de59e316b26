"""What `heal eval` writes: metrics.json, report.md and the PNG plots, for PubMedQA and for summaries."""

from __future__ import annotations

from pathlib import Path

from heal import results
from heal.contracts import StageSummary, fmt, read_json
from heal.eval.metrics import ROUGE_TYPES, UNPARSED
from heal.eval.qa import LABELS

CREDENTIALED_NOTE = ("> **Credentialed data (MIMIC).** predictions.jsonl holds text derived from MIMIC-IV notes: keep "
                     "this folder under the PhysioNet data use agreement; do not publish or upload it.")


def _header(title: str, info: dict) -> list[str]:
    lines = [f"# {title}", "",
             f"model `{info['model_path']}` · data `{info['dataset_path']}` · {info['n']} items · backend "
             f"{info['backend']} · max_new_tokens {info['max_new_tokens']} · {info['seconds']} s · "
             f"{info['finished_at']}", ""]
    if info.get("truncated_prompts"):
        lines += [f"{info['truncated_prompts']} prompts were longer than the model's context and were cut from the "
                  "left.", ""]
    if info.get("credentialed"):
        lines += [CREDENTIALED_NOTE, ""]
    return lines


def write_pubmedqa(out: results.ResultsFolder, run: dict, info: dict) -> None:
    flat, modes = run["metrics"], list(run["per_class"])
    columns = LABELS + [UNPARSED]
    lines = _header("heal eval: PubMedQA", info)
    lines += ["## Scores", "", "Accuracy and macro-F1 over yes/no/maybe are PubMedQA's official metrics. "
              "`generate` parses the first yes/no/maybe of the generated answer; `loglikelihood` picks the most "
              "likely of Yes./No./Maybe. after the prompt.", ""]
    lines.append(results.table(["mode", "accuracy", "macro-F1", "unparsed"], [
        [m, flat[f"pubmedqa/{m}/accuracy"], flat[f"pubmedqa/{m}/macro_f1"], flat[f"pubmedqa/{m}/unparsed_rate"]]
        for m in modes]))
    for mode in modes:
        lines += ["", f"## {mode}: per class", ""]
        lines.append(results.table(["label", "precision", "recall", "F1", "support"], [
            [label, row["precision"], row["recall"], row["f1"], row["support"]]
            for label, row in run["per_class"][mode].items()]))
        lines += ["", f"Confusion matrix (rows gold, columns predicted): ![confusion](confusion_{mode}.png)", ""]
        lines.append(results.table(["gold \\ pred", *columns], [
            [label, *counts] for label, counts in zip(LABELS, run["confusion"][mode])]))
        out.figure(f"confusion_{mode}.png", results.confusion_figure(
            run["confusion"][mode], LABELS, columns, f"PubMedQA confusion matrix ({mode})"))
    robust = run.get("robustness")
    if robust:
        lines += _robustness_section(robust)
        out.figure("robustness.png", results.bar_figure(
            {"clean": {"accuracy": robust["clean_accuracy"], "consistency": 1.0}, **{
                name: {"accuracy": row["accuracy"], "consistency": row["consistency"]}
                for name, row in robust["table"].items()}},
            f"Robustness ({robust['metrics']['robustness/mode']})", "share of items"))
    out.json("metrics.json", {**info, "metrics": flat, "per_class": run["per_class"],
                              "confusion": {"rows": LABELS, "columns": columns, **run["confusion"]},
                              "robustness": robust["table"] if robust else None})
    out.markdown("report.md", "\n".join(lines))


def _robustness_section(robust: dict) -> list[str]:
    lines = ["", f"## Robustness ({robust['metrics']['robustness/mode']})", "",
             "Perturbations that keep the answer. drop = clean accuracy − perturbed accuracy; consistency = share "
             "of items whose prediction did not change. ![robustness](robustness.png)", ""]
    rows = [["clean", robust["clean_accuracy"], 0.0, 1.0]]
    rows += [[name, row["accuracy"], row["drop"], row["consistency"]] for name, row in robust["table"].items()]
    lines.append(results.table(["perturbation", "accuracy", "drop", "consistency"], rows))
    return lines


def write_summaries(out: results.ResultsFolder, run: dict, info: dict) -> None:
    flat = run["metrics"]
    lines = _header(f"heal eval: summaries ({flat['summary/task']})", info)
    lines += ["## Scores", "", "ROUGE F-measures (rouge-score, Porter stemming), mean over items.", ""]
    extra = [k for k in ("summary/embedding_similarity", "summary/bertscore/f1") if k in flat]
    lines.append(results.table(["ROUGE-1", "ROUGE-2", "ROUGE-L", *[k.split("summary/")[1] for k in extra]],
                              [[flat[f"summary/{k}"] for k in ROUGE_TYPES] + [flat[k] for k in extra]]))
    lines += ["", "## Lengths (words)", ""]
    lines.append(results.table(["", "mean", "median", "min", "max"], [
        [name, *(flat[f"summary/length/{name}/{k}"] for k in ("mean", "median", "min", "max"))]
        for name in ("prediction", "reference")]))
    lines += ["", f"Mean prediction/reference length ratio: {flat['summary/length/ratio']:.3f}; share of "
              f"generations that ended on their own (not at max_new_tokens): {flat['summary/finished_rate']:.3f}. "
              "![lengths](lengths.png) ![rouge](rouge.png)", ""]
    lines += ["## Examples", ""]
    for item in run["items"][:3]:
        lines += [f"**{item['id']}** (ROUGE-L {item['rougeL']:.3f})", "",
                  f"- prediction: {results.clip(item['prediction'])}", f"- reference: {results.clip(item['reference'])}",
                  ""]
    out.figure("lengths.png", results.histogram_figure(
        {"prediction": [i["prediction_words"] for i in run["items"]],
         "reference": [i["reference_words"] for i in run["items"]]}, "Summary length", "words"))
    out.figure("rouge.png", results.bar_figure({k: {"F1": flat[f"summary/{k}"]} for k in ROUGE_TYPES},
                                              "ROUGE (mean F-measure)", "F-measure"))
    out.json("metrics.json", {**info, "metrics": flat})
    out.markdown("report.md", "\n".join(lines))


def summarize(output: Path) -> StageSummary:
    """The run report's view of an eval results folder: accuracy (or ROUGE) in the stage table, the task metrics
    for the cross-stage table and bars, and the confusion matrices."""
    m = read_json(output / "metrics.json").get("metrics", {})
    acc = {k.split("/")[1]: v for k, v in m.items() if k.endswith("/accuracy")}
    if acc:
        headline = ", ".join(f"accuracy ({mode}) {fmt(v)}" for mode, v in acc.items())
    else:
        headline = ", ".join(f"{k} {fmt(v)}" for k, v in list({k: v for k, v in m.items() if "rougeL" in k}.items())[:2])
    task = {k: v for k, v in m.items() if k.endswith(("/accuracy", "/macro_f1")) or "rouge" in k or "similarity" in k}
    pngs = sorted(output.glob("confusion_generate*.png")) or sorted(output.glob("confusion_*.png"))
    figures = [(f"confusion matrix ({png.stem.split('_', 1)[-1]})", png) for png in pngs]
    return StageSummary(headline=headline, metrics=m, task_metrics=task, figures=figures)
