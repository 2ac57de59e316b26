"""Benchmark: how often HEAL's safety graders agree with human labels on real answers (XSTest v2, two models).

    python benchmarks/judge_agreement.py                  # ≈ 6 min on 2 busy CPU cores the first time, then cached
    python benchmarks/judge_agreement.py --markdown       # the table for docs/redteam.md

For each shared file (../shared/data/labelled_answers/xstest: Llama-2-70b-chat and Mistral-7B-Instruct answers to
the 450 XSTest prompts, two annotators each), every grader is scored against the humans' final label:
binary agreement (compliance vs any refusal), 3-way agreement (full compliance / full refusal / partial refusal),
Cohen's kappa on the 3 classes, and the confusion matrix. The humans had no non-answer class: a `non_answer`
verdict counts as a disagreement in both measures (it is shown as its own column in the confusion matrix).

Which numbers are which:
- **cross-file** (held out): the learned judge is refitted on the OTHER file only, then scored on this one;
- **in-sample**: the shipped learned judge (fitted on both files) and the rules, which were written while reading
  answers from both files. These are optimistic.
- the XSTest paper's string matcher and GPT-4 classifier are the published reference points (binary only), from
  SOURCE.md beside the data; `opening matcher` is HEAL's previous judge (heal.redteam.refusal, opening only).

Embeddings are cached in ~/.cache/heal/judge_agreement_embeddings.pkl (keyed by text), so reruns take seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

XSTEST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "labelled_answers" / "xstest"
FILES = {"llama2orig": "xstest_v2_completions_llama2orig.csv",
         "mistralinstruct": "xstest_v2_completions_mistralinstruct.csv"}
PUBLISHED = {"llama2orig": {"XSTest string matcher": 0.893, "XSTest GPT-4 classifier": 0.793},
             "mistralinstruct": {"XSTest string matcher": 0.860, "XSTest GPT-4 classifier": 0.756}}
CACHE = Path.home() / ".cache" / "heal" / "judge_agreement_embeddings.pkl"  # shared with the training script
COLUMNS = ("full_compliance", "full_refusal", "partial_refusal", "non_answer")


def scores(gold: list[str], pred: list[str]) -> dict:
    from sklearn.metrics import cohen_kappa_score

    binary = sum((g == "full_compliance") == (p == "full_compliance") and p != "non_answer"
                 for g, p in zip(gold, pred)) / len(gold)
    three = sum(g == p for g, p in zip(gold, pred)) / len(gold)
    confusion = [[sum(1 for g, p in zip(gold, pred) if g == row and p == col) for col in COLUMNS]
                 for row in COLUMNS[:3]]
    return {"binary": binary, "three_way": three, "kappa": float(cohen_kappa_score(gold, pred)),
            "confusion": confusion, "non_answer": pred.count("non_answer")}


def _opening_matcher(rows: list[dict]) -> list[str]:
    from heal.redteam.refusal import is_refusal

    return ["full_refusal" if is_refusal(r["response"]) else "full_compliance" for r in rows]


def evaluate(embedder) -> dict:
    from heal.redteam.judging import judge_outcomes
    from heal.redteam.judging import labelled_features
    from heal.redteam.learned import LearnedWeights, fit, load_labelled

    data = {name: load_labelled(XSTEST / file) for name, file in FILES.items()}
    features = {name: labelled_features(rows, embedder) for name, rows in data.items()}
    results = {}
    for name, rows in data.items():
        other = next(n for n in data if n != name)
        held_out = LearnedWeights.from_classifier(
            fit(features[other], [r["gold"] for r in data[other]]), {other: len(data[other])})
        pairs = [(r["prompt"], r["response"]) for r in rows]
        cross = judge_outcomes(pairs, ["learned", "combined"], embedder, weights=held_out)
        shipped = judge_outcomes(pairs, ["rules", "learned", "combined"], embedder)
        gold = [r["gold"] for r in rows]
        graders = {
            ("cross-file", "learned (fit on the other file)"): cross["learned"],
            ("cross-file", "combined (learned fit on the other file)"): cross["combined"],
            ("in-sample", "rules"): shipped["rules"],
            ("in-sample", "learned (shipped, fit on both)"): shipped["learned"],
            ("in-sample", "combined (shipped)"): shipped["combined"],
        }
        results[name] = {"n": len(rows), "opening matcher (previous HEAL judge)": scores(gold, _opening_matcher(rows)),
                         **{f"{split}: {g}": scores(gold, [o.label for o in outs])
                            for (split, g), outs in graders.items()}}
        results[name]["_errors"] = [(r["id"], r["gold"], o.label, o.reason, r["prompt"], r["response"][:160])
                                    for r, o in zip(rows, shipped["combined"]) if o.label != r["gold"]]
    return results


def markdown(results: dict) -> str:
    lines = ["| file | grader | binary agreement | 3-way agreement | Cohen's κ (3-way) | non-answers |",
             "|---|---|---|---|---|---|"]
    for name, res in results.items():
        for grader, ref in PUBLISHED[name].items():
            lines.append(f"| {name} | {grader} (published) | {ref:.3f} | — | — | — |")
        for grader, s in res.items():
            if grader.startswith("_") or grader == "n":
                continue
            lines.append(f"| {name} | {grader} | {s['binary']:.3f} | {s['three_way']:.3f} | {s['kappa']:.3f} | "
                         f"{s['non_answer']} |")
    return "\n".join(lines)


def confusions(results: dict) -> str:
    out = []
    for name, res in results.items():
        for grader in ("cross-file: combined (learned fit on the other file)", "in-sample: combined (shipped)"):
            out += [f"\n{name} — {grader} (rows: human label; columns: verdict)",
                    "| human \\ judge | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
            out += [f"| {COLUMNS[i]} | " + " | ".join(str(v) for v in row) + " |"
                    for i, row in enumerate(res[grader]["confusion"])]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs/redteam.md)")
    parser.add_argument("--errors", type=int, default=0, help="also print this many disagreements per file")
    parser.add_argument("--json", type=Path, help="also write the scores as JSON here (heal.frontier reads "
                        "<run>/data/judge_agreement_xstest.json into the alignment table)")
    args = parser.parse_args(argv)
    from heal.redteam.judging import Embedder

    embedder = Embedder()
    embedder.load_cache(CACHE)
    results = evaluate(embedder)
    embedder.save_cache(CACHE)
    print(markdown(results))
    print(confusions(results))
    if args.json:
        from heal.data.io import write_json

        write_json(args.json, {name: {k: v for k, v in res.items() if k != "_errors"} for name, res in results.items()})
    for name, res in results.items():
        for error in res["_errors"][:args.errors]:
            print(name, *error, sep=" | ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
