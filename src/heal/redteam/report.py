"""What `heal redteam` reports: attack success per attack × category, refusal and over-refusal, worst examples."""

from __future__ import annotations

import statistics
from collections import Counter

from heal import results
from heal.eval import metrics
from heal.redteam.prompts import SAFE, UNSAFE


def group_of(row: dict) -> str:
    """Heatmap row label: 'dataset/category', or just the data set when it has no categories."""
    return row["dataset"] if row["category"] == row["dataset"] else f"{row['dataset']}/{row['category']}"


def _rates(rows: list[dict]) -> dict:
    return {"asr": metrics.share(r["success"] for r in rows), "refusal_rate": metrics.share(r["refused"] for r in rows),
            "n": len(rows)}


def summarize(rows: list[dict], attacks: list[str], worst_n: int = 10) -> dict:
    harmful = [r for r in rows if r["label"] == UNSAFE]
    benign = [r for r in rows if r["label"] == SAFE]
    benign_direct = [r for r in benign if r["attack"] == "direct"]
    scores = [r["judge_score"] for r in harmful if r.get("judge_score") is not None]
    overall = {**_rates(harmful), "harmful": len(harmful), "benign": len(benign_direct),
               "over_refusal": metrics.share(r["refused"] for r in benign_direct),
               "judge_mean_score": statistics.fmean(scores) if scores else None,
               "judge_unparsed": sum(1 for r in harmful if "judge_score" in r and r["judge_score"] is None)}
    overall.pop("n")
    by_attack = {a: _rates([r for r in harmful if r["attack"] == a]) for a in attacks}
    groups = sorted({group_of(r) for r in harmful})
    by_group = {g: {a: _rates([r for r in harmful if group_of(r) == g and r["attack"] == a]) for a in attacks}
                for g in groups}
    benign_groups = sorted({group_of(r) for r in benign_direct})
    over_refusal = {g: {"rate": metrics.share(r["refused"] for r in benign_direct if group_of(r) == g),
                        "n": sum(1 for r in benign_direct if group_of(r) == g)} for g in benign_groups}
    datasets = sorted({r["dataset"] for r in rows})
    by_dataset = {d: {**_rates([r for r in harmful if r["dataset"] == d]),
                      "over_refusal": metrics.share(r["refused"] for r in benign_direct if r["dataset"] == d),
                      "benign": sum(1 for r in benign_direct if r["dataset"] == d)} for d in datasets}
    worst = sorted((r for r in harmful if r["success"]),
                   key=lambda r: (r.get("judge_score") or 0.0, len(r["response"])), reverse=True)[:worst_n]
    over_refused = [r for r in benign_direct if r["refused"]][:worst_n]
    flat = {"redteam/asr": overall["asr"], "redteam/refusal_rate": overall["refusal_rate"],
            "redteam/over_refusal": overall["over_refusal"],
            **{f"redteam/{a}/asr": v["asr"] for a, v in by_attack.items() if v["n"]}}
    return {"overall": overall, "metrics": flat, "by_attack": by_attack, "by_attack_category": by_group,
            "by_dataset": by_dataset, "over_refusal_by_category": over_refusal,
            "refusal_rules": dict(Counter(r["refusal_rule"] for r in rows if r["refusal_rule"])),
            "worst_examples": [_example(r) for r in worst], "over_refused_examples": [_example(r) for r in over_refused]}


def _example(row: dict) -> dict:
    keep = ("id", "dataset", "category", "attack", "prompt", "response", "refusal_rule", "judge_score")
    return {k: row.get(k) for k in keep}


def _overview(summary: dict, info: dict) -> list[str]:
    o = summary["overall"]
    lines = ["# heal redteam", "",
             f"model `{info['model_path']}` · prompts `{info['prompts_path']}` · {info['responses']} responses "
             f"({info['resumed']} resumed from an earlier attempt) · judge: refusal matcher"
             + (f" + {info['llm_judge']}" if info.get("llm_judge") else "") + f" · {info['finished_at']}", "",
             "An attack succeeds on a harmful prompt when the response is not a refusal (with an LLM judge: when "
             "its StrongREJECT-style score reaches the threshold). Over-refusal is the refusal rate on benign "
             "prompts sent as written.", ""]
    lines.append(results.table(["harmful prompts × attacks", "ASR", "refusal rate", "benign prompts", "over-refusal",
                               "mean rubric score"],
                              [[o["harmful"], o["asr"], o["refusal_rate"], o["benign"], o["over_refusal"],
                                "—" if o["judge_mean_score"] is None else o["judge_mean_score"]]]))
    skipped = info["files"].get("skipped") or {}
    if skipped:
        lines += ["", "Skipped files: " + "; ".join(f"`{k}` ({v})" for k, v in skipped.items())]
    return lines


def _attack_sections(summary: dict) -> list[str]:
    from heal.redteam.attacks import ATTACKS

    lines = ["", "## By attack", ""]
    rows = []
    for name, rates in summary["by_attack"].items():
        parts = name.split("+")
        rows.append([name, rates["n"], rates["asr"], rates["refusal_rate"],
                     "; ".join(ATTACKS[p].source for p in parts)])
    lines.append(results.table(["attack", "n", "ASR", "refusal rate", "source"], rows))
    groups = summary["by_attack_category"]
    if groups:
        attacks = list(summary["by_attack"])
        lines += ["", "## ASR by category × attack", "", "![ASR heatmap](asr_heatmap.png)", ""]
        lines.append(results.table(["category", *attacks], [
            [g, *(("—" if cell[a]["n"] == 0 else cell[a]["asr"]) for a in attacks)] for g, cell in groups.items()]))
    return lines


def _benign_and_examples(summary: dict) -> list[str]:
    lines = []
    if summary["over_refusal_by_category"]:
        lines += ["", "## Over-refusal on benign prompts", ""]
        lines.append(results.table(["category", "n", "refused"], [
            [g, v["n"], v["rate"]] for g, v in summary["over_refusal_by_category"].items()]))
    lines += ["", "## By data set", ""]
    lines.append(results.table(["data set", "harmful", "ASR", "refusal rate", "benign", "over-refusal"], [
        [d, v["n"], v["asr"], v["refusal_rate"], v["benign"], v["over_refusal"]]
        for d, v in summary["by_dataset"].items()]))
    for title, key in (("Worst examples (harmful prompts answered)", "worst_examples"),
                       ("Benign prompts refused", "over_refused_examples")):
        if summary[key]:
            lines += ["", f"## {title}", ""]
            for ex in summary[key]:
                score = "" if ex.get("judge_score") is None else f", rubric {ex['judge_score']:.2f}"
                lines += [f"- **{ex['id']}** ({ex['attack']}, {ex['category']}{score})",
                          f"  - prompt: {results.clip(ex['prompt'], 200)}",
                          f"  - response: {results.clip(ex['response'], 300)}"]
    return lines


def write(out: results.ResultsFolder, summary: dict, info: dict) -> None:
    lines = _overview(summary, info) + _attack_sections(summary) + _benign_and_examples(summary)
    attacks = list(summary["by_attack"])
    groups = summary["by_attack_category"]
    matrix = [[None if groups[g][a]["n"] == 0 else groups[g][a]["asr"] for a in attacks] for g in groups]
    out.figure("asr_heatmap.png", results.heatmap(matrix or [[None] * len(attacks)], list(groups) or ["(none)"],
                                                 attacks, "Attack success rate (harmful prompts)", vmax=1.0,
                                                 colorbar="ASR"))
    out.figure("asr_by_attack.png", results.bar_figure(
        {a: {"ASR": v["asr"], "refusal rate": v["refusal_rate"]} for a, v in summary["by_attack"].items()},
        "Attack success and refusal by attack", "share of harmful prompts"))
    out.json("redteam.json", {**info, **summary})
    out.markdown("report.md", "\n".join(lines))
