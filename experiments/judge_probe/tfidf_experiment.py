"""Tried and not kept: TF-IDF word n-grams of the answer beside the learned safety judge's features.

    .venv/bin/python experiments/judge_probe/tfidf_experiment.py     # ≈ 1 min with the MiniLM cache of judge_agreement.py

For each part of the answer (its opening, the whole answer, opening and rest separately) and weight w, prints the
learned judge's held-out agreement with the humans, binary/3-way: cross-file (fit on the other XSTest file) and
pooled CV (10 folds by prompt), as benchmarks/judge_agreement.py measures them; w = 0 is the shipped feature set.
Results: docs/redteam.md, "What else was tried".
"""

import sys
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "benchmarks")]

import judge_agreement  # noqa: E402
from heal.redteam.judging import Embedder, labelled_features  # noqa: E402
from heal.redteam.learned import C, load_labelled, split_answer  # noqa: E402

PARTS = {"open": lambda r: split_answer(r["response"])[0], "full": lambda r: r["response"],
         "rest": lambda r: split_answer(r["response"])[1]}


def agreement(gold, pred) -> str:
    """binary/3-way, as benchmarks/judge_agreement.py scores a grader."""
    score = judge_agreement.scores(gold, list(pred))
    return f"{score['binary']:.3f}/{score['three_way']:.3f}"


def predict(train_rows, train_x, test_rows, test_x, parts: str, w: float):
    """Fit on the training rows (the judge's features + w·TF-IDF of each named part) and label the test rows."""
    train, test = [csr_matrix(train_x)], [csr_matrix(test_x)]
    for part in parts.split("+") if w else ():
        vectorizer = TfidfVectorizer(ngram_range=(1, 3), min_df=2, sublinear_tf=True)
        train.append(vectorizer.fit_transform([PARTS[part](r) for r in train_rows]) * w)
        test.append(vectorizer.transform([PARTS[part](r) for r in test_rows]) * w)
    clf = LogisticRegression(C=C, max_iter=5000).fit(hstack(train).tocsr(), [r["gold"] for r in train_rows])
    return clf.predict(hstack(test).tocsr())


def main() -> None:
    embedder = Embedder()
    embedder.load_cache(judge_agreement.CACHE)
    data = {name: load_labelled(judge_agreement.XSTEST / f) for name, f in judge_agreement.FILES.items()}
    features = {name: labelled_features(rows, embedder) for name, rows in data.items()}
    rows = [(name, r) for name in data for r in data[name]]
    matrix = np.vstack([features[name] for name in data])
    gold = [r["gold"] for _, r in rows]
    for parts, w in [("open", 0), *((p, w) for p in ("open", "full", "open+rest") for w in (1, 2, 3, 5))]:
        out = []
        for name in data:
            other = next(n for n in data if n != name)
            pred = predict(data[other], features[other], data[name], features[name], parts, w)
            out.append(f"cross-file {name} {agreement([r['gold'] for r in data[name]], pred)}")
        pooled = [None] * len(rows)
        for train, test in GroupKFold(10).split(matrix, gold, [r["prompt"] for _, r in rows]):
            pred = predict([rows[i][1] for i in train], matrix[train], [rows[i][1] for i in test], matrix[test],
                           parts, w)
            for i, label in zip(test, pred):
                pooled[i] = label
        for name in data:
            index = [i for i, (n, _) in enumerate(rows) if n == name]
            out.append(f"pooled {name} {agreement([gold[i] for i in index], [pooled[i] for i in index])}")
        print(f"{parts} w={w}: " + "; ".join(out), flush=True)


if __name__ == "__main__":
    main()
