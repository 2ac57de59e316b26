"""Agreement between clinicians, and between an AI judge and the clinicians; the rule that turns votes into a pair.

Categories are the four answers a clinician can give: answer_1, answer_2, tie, both_unsafe (in the file's order,
whatever order each annotator saw).

- Cohen's kappa for every two annotators over the pairs both labelled (scikit-learn's `cohen_kappa_score`).
- Fleiss' kappa over the pairs labelled by the same number n ≥ 2 of annotators (the most common n):

      P_i = (Σ_j n_ij² − n) / (n (n − 1))       agreement on item i (n_ij: raters putting item i in category j)
      P̄ = mean_i P_i,  p_j = Σ_i n_ij / (N n),  P̄_e = Σ_j p_j²
      κ = (P̄ − P̄_e) / (1 − P̄_e)

- Judge–human: on pairs that carry an AI verdict, the share of the clinicians' decisive labels (A or B) that pick the
  judge's answer, and Cohen's kappa between the judge's verdict and each label (ties and both-unsafe included, so a
  judge that never says "tie" is not flattered).

Export rule (`resolve`): a pair becomes one prompt/chosen/rejected record when one answer has strictly more votes
than the other AND strictly more than "both unsafe"; tie votes count for neither. It is left out — and counted by
reason — when it has fewer labels than asked, no majority (split or ties only), "both unsafe" is at least as
common as the winner's votes (preferring either answer would teach an unsafe one), or an annotator flagged PHI.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

CATEGORIES = ("answer_1", "answer_2", "tie", "both_unsafe")


def fleiss_kappa(counts: list[list[int]]) -> float | None:
    """Fleiss' kappa of an items × categories count table whose rows all sum to the same n ≥ 2 (formula above).

    None when it is undefined: no items, or every rating in one category (P̄_e = 1)."""
    if not counts:
        return None
    n = sum(counts[0])
    if n < 2 or any(sum(row) != n for row in counts):
        raise ValueError("every item needs the same number (≥ 2) of ratings")
    items = len(counts)
    p_bar = sum((sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts) / items
    p_j = [sum(row[j] for row in counts) / (items * n) for j in range(len(counts[0]))]
    p_e = sum(p * p for p in p_j)
    if math.isclose(p_e, 1.0):
        return None
    return (p_bar - p_e) / (1 - p_e)


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items; None when undefined (one category only)."""
    if len(a) < 2 or len(set(a) | set(b)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score

    value = cohen_kappa_score(a, b, labels=list(CATEGORIES))
    return None if math.isnan(value) else float(value)


def pairwise_cohen(labels: dict[int, dict[str, str]]) -> list[dict]:
    """{pair id: {annotator: choice}} → Cohen's kappa for every two annotators who share at least 2 pairs."""
    annotators = sorted({name for votes in labels.values() for name in votes})
    result = []
    for first, second in itertools.combinations(annotators, 2):
        shared = [votes for votes in labels.values() if first in votes and second in votes]
        if len(shared) >= 2:
            a, b = [v[first] for v in shared], [v[second] for v in shared]
            result.append({"annotators": [first, second], "pairs": len(shared), "kappa": cohen_kappa(a, b),
                           "percent_agreement": sum(x == y for x, y in zip(a, b)) / len(shared)})
    return result


def fleiss_over(labels: dict[int, dict[str, str]]) -> dict:
    """Fleiss' kappa over the pairs with the most common number (≥ 2) of labels."""
    sizes = Counter(len(votes) for votes in labels.values() if len(votes) >= 2)
    if not sizes:
        return {"kappa": None, "pairs": 0, "raters_per_pair": None}
    n = sizes.most_common(1)[0][0]
    table = [[list(votes.values()).count(c) for c in CATEGORIES] for votes in labels.values() if len(votes) == n]
    return {"kappa": fleiss_kappa(table), "pairs": len(table), "raters_per_pair": n}


def judge_agreement(labels: dict[int, dict[str, str]], ai_choice: dict[int, int]) -> dict:
    """How often the clinicians pick the AI judge's answer (see the module docstring)."""
    judged = [(f"answer_{ai_choice[p]}", choice) for p, votes in labels.items() if p in ai_choice
              for choice in votes.values()]
    decisive = [(ai, human) for ai, human in judged if human in ("answer_1", "answer_2")]
    return {"pairs": sum(1 for p in labels if p in ai_choice and labels[p]), "labels": len(judged),
            "decisive_labels": len(decisive),
            "agreement": sum(ai == human for ai, human in decisive) / len(decisive) if decisive else None,
            "kappa": cohen_kappa([ai for ai, _ in judged], [human for _, human in judged])}


def resolve(choices: list[str], phi_flagged: bool, min_labels: int = 1,
            include_phi_flagged: bool = False) -> tuple[str | None, str]:
    """(winner 'answer_1'/'answer_2' or None, reason) for one pair's labels, by the export rule above."""
    if not choices or len(choices) < min_labels:
        return None, "too_few_labels"
    if phi_flagged and not include_phi_flagged:
        return None, "phi_flagged"
    votes = Counter(choices)
    first, second, unsafe = votes["answer_1"], votes["answer_2"], votes["both_unsafe"]
    if first == second:
        return None, "both_unsafe" if unsafe > first else "no_majority"
    winner, top = ("answer_1", first) if first > second else ("answer_2", second)
    if unsafe >= top:
        return None, "both_unsafe"
    return winner, "exported"
