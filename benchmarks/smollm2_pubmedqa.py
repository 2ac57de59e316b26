"""Baseline: smollm2-135m zero-shot on PubMedQA's 500 labelled items, by official CV fold, generative and log-likelihood.

    python benchmarks/smollm2_pubmedqa.py                          # prep + `heal eval` on all 500 items, then the table
    python benchmarks/smollm2_pubmedqa.py --from_dir runs/pubmedqa_zeroshot    # only the table, from a finished eval

The eval is one `heal eval` run over the 500 train/validation items (`ori_pqal_trainval.json`; the official test
split is never read): greedy answer (the first yes/no/maybe in up to 16 new tokens) and log-likelihood of
"Yes."/"No."/"Maybe." after the prompt. The table reads its predictions.jsonl back and splits them by the official
10-fold CV file (`pqal_cv_folds.json`: 50 dev PMIDs per fold, together all 500), so each row is one fold's dev part —
the numbers a model fine-tuned on that fold's train part would be compared with. Beside each: the majority-class
rate (the share of "yes", PubMedQA's most frequent label), which a constant answer scores. Bootstrap 95% intervals
(1,000 resamples of items) on the all-500 accuracies.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
MODES = ("generate", "loglikelihood")


def run_eval(args) -> Path:
    data = Path(args.work_dir) / "pubmedqa_all500.jsonl"
    out = Path(args.work_dir) / "eval"
    heal = [sys.executable, "-m", "heal.cli"]
    subprocess.run(heal + ["prep", "--dataset", "pubmedqa", "--input_path", str(Path(args.data) / "ori_pqal_trainval.json"),
                           "--output_path", str(data)], check=True)
    subprocess.run(heal + ["eval", "--model_path", args.model, "--dataset_path", str(data), "--max_new_tokens", "16",
                           "--batch_size", str(args.batch_size), "--output_dir", str(out), "--no_progress"], check=True)
    return out


def table(folder: Path, folds_path: Path) -> str:
    from heal.data.pubmedqa import load_folds
    from heal.eval.metrics import accuracy, bootstrap_ci, macro_f1

    labels = ["yes", "no", "maybe"]
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines() if line.strip()]
    by_id = {str(r["id"]): r for r in rows}
    folds = load_folds(folds_path)
    groups = [(name, [by_id[p] for p in folds[name] if p in by_id]) for name in sorted(folds, key=lambda n: int(n[4:]))]
    groups.append(("all", rows))
    lines = ["| items | n | majority (\"yes\") | generative acc | generative macro-F1 | log-lik acc | log-lik macro-F1 |",
             "|---|---|---|---|---|---|---|"]
    for name, items in groups:
        gold = [r["label"] for r in items]
        cells = [name if name == "all" else f"{name} dev", str(len(items)),
                 f"{sum(g == 'yes' for g in gold) / len(gold):.3f}"]
        for mode in MODES:
            pred = [r.get(f"{mode}/prediction") for r in items]
            acc = accuracy(gold, pred)
            ci = bootstrap_ci([p == g for p, g in zip(pred, gold)]) if name == "all" else None
            cells.append(f"{acc:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""))
            cells.append(f"{macro_f1(gold, pred, labels):.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    spread = {mode: [accuracy([r['label'] for r in items], [r.get(f'{mode}/prediction') for r in items])
                     for name, items in groups[:-1]] for mode in MODES}
    lines.append("")
    lines.append("Per-fold accuracy range: " + "; ".join(f"{m} {min(v):.2f}–{max(v):.2f}" for m, v in spread.items()))
    answered = {mode: {lab: sum(r.get(f"{mode}/prediction") == lab for r in rows) for lab in labels + ["unparsed"]}
                for mode in MODES}
    lines.append("Answers given (all 500): " + "; ".join(
        f"{m} " + ", ".join(f"{k} {v}" for k, v in counts.items()) for m, counts in answered.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "pubmedqa"),
                        help="folder with ori_pqal_trainval.json and pqal_cv_folds.json")
    parser.add_argument("--work_dir", default=str(REPO / "benchmarks" / "_work" / "smollm2_pubmedqa"))
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--from_dir", help="a finished `heal eval` folder over the 500 items: only print the table")
    args = parser.parse_args()
    folder = Path(args.from_dir) if args.from_dir else run_eval(args)
    metrics = json.loads((folder / "metrics.json").read_text())
    print(f"model {args.model}; eval {folder} ({metrics.get('seconds', '?')} s)")
    print(table(folder, Path(args.data) / "pqal_cv_folds.json"))


if __name__ == "__main__":
    main()
