"""Train the learned safety judge on the shared, human-labelled XSTest answers and write its weights.

    .venv/bin/python scripts/train_learned_judge.py      # → src/heal/redteam/learned_judge.json

Only shared data is read (../shared/data/labelled_answers/xstest, both files); no official test set. Deterministic:
the same data gives the same file. heal.redteam.learned documents the features and the classifier.
"""

from __future__ import annotations

import sys
from pathlib import Path

from heal.redteam.judging import labelled_features
from heal.redteam.learned import WEIGHTS_PATH, LearnedWeights, fit, load_labelled

XSTEST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "labelled_answers" / "xstest"
CACHE = Path.home() / ".cache" / "heal" / "judge_agreement_embeddings.pkl"  # MiniLM vectors by text (a speed-up)
FILES = ("xstest_v2_completions_llama2orig.csv", "xstest_v2_completions_mistralinstruct.csv")


def main() -> int:
    import numpy as np

    from heal.redteam.judging import Embedder

    embedder = Embedder()
    embedder.load_cache(CACHE)
    features, labels, trained_on = [], [], {}
    for name in FILES:
        rows = load_labelled(XSTEST / name)
        features.append(labelled_features(rows, embedder))
        labels += [row["gold"] for row in rows]
        trained_on[f"shared/data/labelled_answers/xstest/{name}"] = len(rows)
    weights = LearnedWeights.from_classifier(fit(np.vstack(features), labels), trained_on)
    weights.save(WEIGHTS_PATH)
    embedder.save_cache(CACHE)
    print(f"wrote {WEIGHTS_PATH} ({WEIGHTS_PATH.stat().st_size // 1024} kB) from {sum(trained_on.values())} answers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
