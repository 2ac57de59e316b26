"""`heal annotate stats`: progress per annotator, inter-annotator and judge–human agreement (also the admin page's).

    heal annotate stats --db_path labels.sqlite
"""

from __future__ import annotations

import statistics

from heal.annotate.agreement import fleiss_over, judge_agreement, pairwise_cohen
from heal.annotate.config import StatsConfig, command_parser
from heal.annotate.store import Store


def make_parser():
    return command_parser("stats")


def votes_by_pair(store: Store) -> dict[int, dict[str, str]]:
    """{pair id: {annotator name: stored choice}} for every pair with at least one label."""
    labels: dict[int, dict[str, str]] = {}
    for row in store.read("SELECT l.pair_id, a.name, l.choice FROM labels l JOIN annotators a ON a.id = "
                          "l.annotator_id ORDER BY l.pair_id, l.id"):
        labels.setdefault(row["pair_id"], {})[row["name"]] = row["choice"]
    return labels


def summary(store: Store) -> dict:
    labels_per_pair = int(store.setting("labels_per_pair", "2"))
    labels = votes_by_pair(store)
    ai_choice = {row["id"]: row["ai_choice"] for row in store.read("SELECT id, ai_choice FROM pairs WHERE "
                                                                    "ai_choice IS NOT NULL")}
    annotators = []
    for row in store.read("SELECT id, name, is_admin FROM annotators ORDER BY name"):
        counts = dict(store.read("SELECT status, COUNT(*) FROM assignments WHERE annotator_id = ? GROUP BY status",
                                 (row["id"],)))
        seconds = [r[0] for r in store.read("SELECT seconds FROM labels WHERE annotator_id = ? AND seconds IS NOT "
                                            "NULL", (row["id"],))]
        annotators.append({"name": row["name"], "admin": bool(row["is_admin"]), "labelled": counts.get("done", 0),
                           "skipped": counts.get("skipped", 0), "open": counts.get("open", 0),
                           "median_seconds": round(statistics.median(seconds), 1) if seconds else None})
    pairs = store.count("SELECT COUNT(*) FROM pairs")
    return {
        "pairs": pairs, "labels_per_pair": labels_per_pair, "labels": sum(len(v) for v in labels.values()),
        "pairs_complete": sum(1 for v in labels.values() if len(v) >= labels_per_pair),
        "labels_needed": pairs * labels_per_pair, "annotators": annotators,
        "agreement": {"fleiss": fleiss_over(labels), "cohen": pairwise_cohen(labels)},
        "judge": judge_agreement(labels, ai_choice) if ai_choice else None,
    }


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_summary(stats: dict) -> str:
    lines = [f"pairs: {stats['pairs']}  labels: {stats['labels']}/{stats['labels_needed']} "
             f"({stats['labels_per_pair']} per pair)  complete pairs: {stats['pairs_complete']}", "",
             f"{'annotator':<20} {'labelled':>8} {'skipped':>8} {'open':>5} {'median s':>9}"]
    for a in stats["annotators"]:
        lines.append(f"{a['name'] + (' (admin)' if a['admin'] else ''):<20} {a['labelled']:>8} {a['skipped']:>8} "
                     f"{a['open']:>5} {_number(a['median_seconds'], 1):>9}")
    fleiss = stats["agreement"]["fleiss"]
    lines += ["", f"Fleiss' kappa: {_number(fleiss['kappa'])} over {fleiss['pairs']} pairs with "
                  f"{fleiss['raters_per_pair'] or '-'} labels each"]
    for c in stats["agreement"]["cohen"]:
        lines.append(f"Cohen's kappa {c['annotators'][0]} vs {c['annotators'][1]}: {_number(c['kappa'])} "
                     f"(raw agreement {c['percent_agreement']:.0%}, {c['pairs']} shared pairs)")
    judge = stats["judge"]
    if judge:
        lines.append(f"AI judge vs clinicians: {_number(judge['agreement'])} agreement on "
                     f"{judge['decisive_labels']} decisive labels, kappa {_number(judge['kappa'])} "
                     f"({judge['labels']} labels on {judge['pairs']} judged pairs)")
    return "\n".join(lines)


def main(config: StatsConfig) -> dict:
    store = Store(config.db_path, create=False)
    stats = summary(store)
    print(format_summary(stats))
    if config.output_path:
        from heal.data.io import write_json

        write_json(config.output_path, stats)
    return stats

