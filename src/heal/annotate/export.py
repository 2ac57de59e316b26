"""`heal annotate export`: clinicians' labels → TRL preference records that `heal reward` and `heal dpo` read as they
are (also a pipeline stage: `verb: annotate`, args db_path and output_path).

    heal annotate export --db_path labels.sqlite --output_path data/processed/clinician_prefs.jsonl
    heal reward --dataset_path data/processed/clinician_prefs.jsonl --model_name heal-tiny --output_dir models/rm

Each exported pair is prompt/chosen/rejected plus its label metadata: votes for each answer, ties, both-unsafe,
flag counts, the annotators' rationales, and (when the pair carried an AI verdict) whether the clinicians agreed
with the judge. Which pairs are exported, and which are left out and why, follows the rule in
heal.annotate.agreement (also in docs/annotate.md); the counts by reason are printed and kept in the file's
`.meta.json` sidecar.
"""

from __future__ import annotations

import json
from collections import Counter

from heal.annotate.agreement import resolve
from heal.annotate.config import ExportConfig, command_parser
from heal.annotate.store import FLAGS, Store
from heal.errors import HealError


def make_parser():
    return command_parser("export")


def collect(store: Store) -> dict[int, list[dict]]:
    """{pair id: its labels in order}, each {annotator, choice, flags, rationale}."""
    labels: dict[int, list[dict]] = {}
    for row in store.read("SELECT l.pair_id, a.name, l.choice, l.flags, l.rationale FROM labels l JOIN annotators a "
                          "ON a.id = l.annotator_id ORDER BY l.pair_id, l.id"):
        labels.setdefault(row["pair_id"], []).append({"annotator": row["name"], "choice": row["choice"],
                                                      "flags": json.loads(row["flags"]),
                                                      "rationale": row["rationale"]})
    return labels


def build_records(store: Store, min_labels: int = 1, include_phi_flagged: bool = False) -> tuple[list[dict], dict]:
    """(preference records, counts of pairs by outcome) — pure reading, nothing written."""
    labels = collect(store)
    records, outcomes = [], Counter()
    for pair in store.read("SELECT id, prompt, answer_1, answer_2, ai_choice, ai_judge, source, extra FROM pairs "
                           "ORDER BY id"):
        votes = labels.get(pair["id"], [])
        flags = Counter(flag for label in votes for flag in label["flags"])
        winner, reason = resolve([v["choice"] for v in votes], flags["phi"] > 0, min_labels, include_phi_flagged)
        outcomes[reason if votes else "unlabelled"] += 1
        if winner is None:
            continue
        loser = "answer_2" if winner == "answer_1" else "answer_1"
        choices = Counter(v["choice"] for v in votes)
        record = {"prompt": pair["prompt"], "chosen": pair[winner], "rejected": pair[loser],
                  **json.loads(pair["extra"]), "source": pair["source"], "pair_id": pair["id"],
                  "labels": len(votes), "votes_chosen": choices[winner], "votes_rejected": choices[loser],
                  "votes_tie": choices["tie"], "votes_both_unsafe": choices["both_unsafe"],
                  "agreement": round(choices[winner] / len(votes), 4),
                  **{f"flag_{flag}": flags[flag] for flag in FLAGS},
                  "annotators": [v["annotator"] for v in votes],
                  "rationales": [v["rationale"] for v in votes if v["rationale"]],
                  "ai_judge": pair["ai_judge"],
                  "ai_agrees": None if pair["ai_choice"] is None else f"answer_{pair['ai_choice']}" == winner}
        records.append(record)
    return records, dict(outcomes)


def main(config: ExportConfig) -> dict:
    from heal.data import io

    io.check_output_path(config.output_path)
    if config.min_labels < 1:
        raise HealError(f"--min_labels {config.min_labels}: must be at least 1")
    store = Store(config.db_path, create=False)
    records, outcomes = build_records(store, config.min_labels, config.include_phi_flagged)
    left_out = ", ".join(f"{reason} {n}" for reason, n in sorted(outcomes.items()) if reason != "exported")
    if not records:
        raise HealError(f"{config.db_path}: no pair can be exported yet ({left_out or 'no pairs'}); label more "
                        "pairs or lower --min_labels")
    credentialed = store.credentialed()
    metadata = {"stage": "annotate", "source": "mimic" if credentialed else "human", "credentialed": credentialed,
                "rule": "majority of A/B votes, more than both-unsafe; ties count for neither; PHI-flagged left out",
                "config": {"db_path": config.db_path, "min_labels": config.min_labels,
                           "include_phi_flagged": config.include_phi_flagged},
                "summary": {"pairs_exported": len(records), "outcomes": outcomes}}
    io.write_records(config.output_path, records, metadata)
    print(f"heal annotate export: {len(records)} pairs → {config.output_path}"
          + (f" (left out: {left_out})" if left_out else ""))
    return metadata["summary"]
