"""Reading an over-optimisation monitor back from a run folder (heal.rl.monitor writes it): the figure, the numbers
for the run summary and the card, and the run report's table. Imports no model code.
"""

from __future__ import annotations

import math
from pathlib import Path

from heal.models import run_folder
from heal.rl.rewards import RewardSpec

FIGURE_FILE = "overoptimisation.png"


def monitor_rows(folder: str | Path) -> list[dict]:
    """The monitor's rows of metrics.jsonl, one per measured update, in update order."""
    rows = {r["monitor/step"]: r for r in run_folder.read_metrics(folder) if "monitor/gold" in r}
    return [rows[k] for k in sorted(rows)]


def best_info(folder: str | Path) -> dict:
    """What the run summary recorded about --keep_best (GoldMonitor.finish; {} without it)."""
    run = run_folder.read_run(folder) or {}
    return run.get("monitor") or {}


def key_metrics(folder: str | Path, kept: dict) -> dict:
    """The monitor's numbers for the run summary and the card: first and last point, and the kept one."""
    rows = monitor_rows(folder)
    if not rows:
        return {}
    out = {f"monitor/{key}_{name}": row[f"monitor/{key}"] for name, row in (("first", rows[0]), ("last", rows[-1]))
           for key in ("proxy", "gold", "kl")}
    if kept:
        best = next((r for r in rows if r["monitor/step"] == kept["best_step"]), {})
        out.update({"monitor/best_step": kept["best_step"], "monitor/best_gold": kept["best_gold"],
                    "monitor/best_proxy": best.get("monitor/proxy"), "monitor/best_kl": best.get("monitor/kl")})
        if "monitor/accuracy" in best:
            out["monitor/best_accuracy"] = best["monitor/accuracy"]
    return {k: v for k, v in out.items() if v is not None}


def card_lines(gold: RewardSpec, kept: dict, every: int) -> dict:
    """The model card's lines about the monitor (Training section)."""
    lines = {"gold measure (monitor)": f"{gold.describe()}, on the held-out prompts every {every} updates "
                                       f"({FIGURE_FILE})"}
    if kept:
        lines["kept model (--keep_best)"] = (
            f"update {kept['best_step']}, the best gold score ({kept['best_gold']:.3f}); the last update "
            f"({kept['last_step']}) scored {_num(kept.get('last_gold'))}")
    return lines


def _num(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def plot_overoptimisation(folder: str | Path, title: str, proxy_name: str, gold_name: str,
                          kept: dict | None = None) -> Path | None:
    """overoptimisation.png: proxy and gold held-out reward against √KL (Gao et al. 2022 plot against the square
    root of the KL), each point labelled with its update; the kept best point (--keep_best) is ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = monitor_rows(folder)
    if not rows:
        return None
    x = [math.sqrt(max(0.0, r["monitor/kl"])) for r in rows]
    fig, left = plt.subplots(figsize=(7.2, 4.6), dpi=100)
    right = left.twinx()  # proxy and gold live on different scales (a normalised reward model vs a 0–1 rule)
    left.plot(x, [r["monitor/proxy"] for r in rows], "o-", color="tab:blue", label=f"proxy: {proxy_name}")
    right.plot(x, [r["monitor/gold"] for r in rows], "s-", color="tab:orange", label=f"gold: {gold_name}")
    for xi, r in zip(x, rows):
        right.annotate(str(r["monitor/step"]), (xi, r["monitor/gold"]), textcoords="offset points", xytext=(4, 4),
                       fontsize=7, color="tab:orange")
    best = next((r for r in rows if kept and r["monitor/step"] == kept["best_step"]), None)
    if best is not None:
        right.plot([math.sqrt(max(0.0, best["monitor/kl"]))], [best["monitor/gold"]], "o", markersize=14,
                   markerfacecolor="none", markeredgecolor="tab:red", label=f"kept: update {best['monitor/step']}")
    left.set_xlabel("√KL(π ‖ π_ref) per response (held-out prompts, sampled)")
    left.set_ylabel("proxy reward (held-out, greedy)", color="tab:blue")
    right.set_ylabel("gold reward (held-out, greedy)", color="tab:orange")
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles, [h.get_label() for h in handles], fontsize=8, loc="best")
    left.grid(alpha=0.3)
    left.set_title(title, fontsize=10)
    return run_folder.save_figure(fig, Path(folder) / FIGURE_FILE)


def report_parts(folder: str | Path) -> tuple[list[tuple[str, str]], list[tuple[str, list[dict]]]]:
    """(results rows, tables) for the run report: the kept update, and one table row per monitor point."""
    from heal.contracts import fmt

    rows = monitor_rows(folder)
    if not rows:
        return [], []
    info = best_info(folder)
    results = [("gold reward, held-out (start → last update)",
                f"{fmt(rows[0]['monitor/gold'])} → {fmt(rows[-1]['monitor/gold'])}")]
    if info:
        results.append(("kept model (--keep_best): best gold", f"update {info['best_step']} (gold "
                        f"{fmt(info['best_gold'])}; last update {info['last_step']}: {fmt(info.get('last_gold'))})"))
    table = [{"update": r["monitor/step"], "KL": fmt(r["monitor/kl"], 2), "proxy": fmt(r["monitor/proxy"]),
              "gold": fmt(r["monitor/gold"]), "accuracy": fmt(r.get("monitor/accuracy")),
              "kept": "best" if info and r["monitor/step"] == info.get("best_step") else ""} for r in rows]
    return results, [("over-optimisation monitor: held-out proxy and gold reward by update", table)]
