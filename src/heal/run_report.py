"""The run report of `heal pipeline`: one self-contained HTML file (images embedded) and the same in Markdown.

    heal pipeline experiments/configs/quickstart.yaml      # → <run_dir>/report.html and report.md

It reads what each stage left in its output (heal_run.json, metrics.json, redteam.json, the PNGs and the answer
files), so it can be rebuilt at any time from the run folder alone:

    python -m heal.run_report runs/quickstart

Sections: the stage table (status, time, headline), the results (task metrics per eval stage, reward and KL per RL
stage, attack success and over-refusal per red-team stage), loss / reward / KL curves, eval bars, confusion
matrices, the attack × category heatmaps, and example generations (before/after PPO, and red-team worst cases).
"""

from __future__ import annotations

import base64
import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

RL_VERBS = ("ppo", "dpo", "grpo")
EVAL_BARS = "report_eval_bars.png"


@dataclass
class StageView:
    name: str
    verb: str
    output: Path
    status: str = "not run"
    seconds: float | None = None
    headline: str = ""
    info: dict = field(default_factory=dict)  # what the stage's own files say


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
                if limit and len(rows) >= limit:
                    break
    except (OSError, ValueError):
        pass
    return rows


def collect(folder: Path, stages: list[tuple[str, str, Path]]) -> list[StageView]:
    """One view per declared stage, from the pipeline state and the stage's own output files."""
    state = _json(folder / "pipeline_state.json").get("stages", {})
    views = []
    for name, verb, output in stages:
        record = state.get(name, {})
        view = StageView(name, verb, Path(output), record.get("status", "not run"), record.get("seconds"))
        if record.get("status") == "failed":
            view.headline = record.get("error", "")
        elif Path(output).exists():
            view.info = _read_stage(verb, Path(output))
            view.headline = _headline(verb, view.info)
        views.append(view)
    return views


def _read_stage(verb: str, output: Path) -> dict:
    if verb in ("prep", "label"):
        meta = _json(output.with_name(output.name + ".meta.json"))
        rows = sum(1 for _ in output.open(encoding="utf-8", errors="replace")) if output.suffix == ".jsonl" else None
        return {"records": meta.get("records", meta.get("written", rows)), "meta": meta}
    if verb in ("eval", "redteam"):
        return _json(output / ("metrics.json" if verb == "eval" else "redteam.json"))
    return _json(output / "heal_run.json")


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _headline(verb: str, info: dict) -> str:
    m = info.get("metrics", {})
    if verb in ("prep", "label"):
        what = "preference pairs" if verb == "label" else "records"
        return f"{_fmt(info.get('records'))} {what}" if info.get("records") is not None else ""
    if verb == "sft":
        return f"{_fmt(m.get('train/global_step'))} steps, last loss {_fmt(m.get('train/last_loss'))}"
    if verb == "reward":
        return (f"pairwise accuracy {_fmt(m.get('eval_before/accuracy'))} → {_fmt(m.get('eval/accuracy'))} "
                f"({info.get('data', {}).get('eval_pairs', '?')} held-out pairs)")
    if verb in RL_VERBS:
        parts = []
        if "eval/score" in m:
            parts.append(f"held-out reward {_fmt(m.get('eval_before/score'))} → {_fmt(m['eval/score'])}")
        if "eval/accuracy" in m:
            parts.append(f"accuracy {_fmt(m.get('eval_before/accuracy'))} → {_fmt(m['eval/accuracy'])}")
        if "objective/kl_last" in m:
            parts.append(f"KL {_fmt(m['objective/kl_last'], 2)}")
        return ", ".join(parts)
    if verb == "eval":
        acc = {k.split("/")[1]: v for k, v in m.items() if k.endswith("/accuracy")}
        if acc:
            return ", ".join(f"accuracy ({mode}) {_fmt(v)}" for mode, v in acc.items())
        rouge = {k: v for k, v in m.items() if "rougeL" in k}
        return ", ".join(f"{k} {_fmt(v)}" for k, v in list(rouge.items())[:2])
    if verb == "redteam":
        o = info.get("overall", {})
        return (f"ASR {_fmt(o.get('asr'))} on {o.get('harmful', '?')} attacks, "
                f"non-answers {_fmt(o.get('non_answer_rate'))}, over-refusal {_fmt(o.get('over_refusal'))}")
    return ""


# ------------------------------------------------------------------------------------------------- the results ---

def eval_table(views: list[StageView]) -> tuple[list[str], list[list[str]]]:
    """Task metrics with one column per eval stage: (header, rows)."""
    evals = [v for v in views if v.verb == "eval" and v.info.get("metrics")]
    keys = sorted({k for v in evals for k in v.info["metrics"]
                   if k.endswith(("/accuracy", "/macro_f1")) or "rouge" in k or "similarity" in k})
    if not keys:
        return [], []
    return ["measure", *(v.name for v in evals)], [[k, *(_fmt(v.info["metrics"].get(k)) for v in evals)]
                                                    for k in keys]


def results_rows(views: list[StageView]) -> list[list[str]]:
    """[stage, measure, value] rows for reward, RL and red-team stages, in stage order."""
    rows = []
    for v in views:
        m = v.info.get("metrics", {})
        if v.verb == "reward" and "eval/accuracy" in m:
            rows.append([v.name, "pairwise accuracy, held-out pairs (before → after)",
                         f"{_fmt(m.get('eval_before/accuracy'))} → {_fmt(m['eval/accuracy'])}"])
        elif v.verb in RL_VERBS:
            for key, name in (("score", "held-out reward, greedy"), ("accuracy", "held-out accuracy, greedy"),
                              ("sampled_score", "held-out reward, sampled")):
                if f"eval/{key}" in m:
                    rows.append([v.name, f"{name} (before → after)",
                                 f"{_fmt(m.get(f'eval_before/{key}'))} → {_fmt(m[f'eval/{key}'])}"])
            if "objective/kl_last" in m:
                rows.append([v.name, "KL to the reference (mean of the last quarter of updates)",
                             _fmt(m["objective/kl_last"])])
        elif v.verb == "redteam" and v.info.get("overall"):
            o = v.info["overall"]
            rows += [[v.name, f"attack success rate ({o.get('harmful', '?')} attacked requests)", _fmt(o.get("asr"))],
                     [v.name, "refusal rate (harmful)", _fmt(o.get("refusal_rate"))],
                     [v.name, "non-answer rate (harmful)", _fmt(o.get("non_answer_rate"))],
                     [v.name, f"over-refusal ({o.get('benign', '?')} benign requests)", _fmt(o.get("over_refusal"))]]
    return rows


def eval_bars(views: list[StageView], folder: Path) -> Path | None:
    """Accuracy and macro-F1 of every PubMedQA eval stage side by side (one PNG in the run folder)."""
    evals = [v for v in views if v.verb == "eval" and any(k.endswith("/accuracy") for k in v.info.get("metrics", {}))]
    if not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for v in evals for k in v.info["metrics"] if k.endswith(("/accuracy", "/macro_f1"))})
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(keys) * len(evals) / 2 + 2), 3.2))
    width = 0.8 / len(evals)
    for i, v in enumerate(evals):
        values = [v.info["metrics"].get(k, 0.0) for k in keys]
        bars = ax.bar([j + i * width for j in range(len(keys))], values, width, label=v.name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks([j + width * (len(evals) - 1) / 2 for j in range(len(keys))],
                  [k.replace("pubmedqa/", "").replace("/", "\n") for k in keys], fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("score")
    ax.set_title("PubMedQA: accuracy and macro-F1 per eval stage", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    path = folder / EVAL_BARS
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def figures(views: list[StageView], folder: Path) -> list[tuple[str, Path]]:
    """(caption, PNG) in reading order: training curves, eval bars, confusion matrices, red-team heatmaps."""
    found = []
    for v in views:
        if v.verb in ("sft", "reward", "dpo") and (v.output / "loss_curve.png").is_file():
            found.append((f"{v.name}: training loss", v.output / "loss_curve.png"))
        for png in sorted(v.output.glob("*_curves.png")) if v.verb in RL_VERBS and v.output.is_dir() else []:
            found.append((f"{v.name}: reward, KL and losses per update", png))
    bars = eval_bars(views, folder)
    if bars:
        found.append(("Eval: accuracy and macro-F1 per stage", bars))
    for v in views:
        if v.verb == "eval" and v.output.is_dir():
            for png in sorted(v.output.glob("confusion_generate*.png")) or sorted(v.output.glob("confusion_*.png")):
                found.append((f"{v.name}: confusion matrix ({png.stem.split('_', 1)[-1]})", png))
    for v in views:
        if v.verb == "redteam" and (v.output / "asr_heatmap.png").is_file():
            found.append((f"{v.name}: attack success per attack × category", v.output / "asr_heatmap.png"))
    return found


def examples(views: list[StageView], n: int = 4) -> list[tuple[str, list[dict]]]:
    """Example generations: before/after for RL stages, a few eval predictions, the red-team worst cases."""
    sections = []
    for v in views:
        if v.verb in RL_VERBS and (v.output / "eval_answers.jsonl").is_file():
            answers = [a for a in _jsonl(v.output / "eval_answers.jsonl") if not a.get("sampled")]
            before = {a["prompt"]: a for a in answers if a.get("when") == "eval_before"}
            pairs = [(before[a["prompt"]], a) for a in answers if a.get("when") == "eval" and a["prompt"] in before]
            changed = sorted(pairs, key=lambda p: p[0]["text"] == p[1]["text"])  # answers that changed first
            rows = [{"prompt": _short(b["prompt"], 220), "label": b.get("label") or "",
                     "before": b["text"], "after": a["text"],
                     "reward": f"{_fmt(b['score'], 2)} → {_fmt(a['score'], 2)}"}
                    for b, a in changed[:n]]
            if rows:
                sections.append((f"{v.name}: held-out answers before and after (greedy)", rows))
        if v.verb == "redteam" and v.info.get("worst_examples"):
            rows = [{"attack": w.get("attack", ""), "category": w.get("category", ""),
                     "prompt": _short(w["prompt"], 160),
                     "response": _short(w.get("response", ""), 200)} for w in v.info["worst_examples"][:n]]
            sections.append((f"{v.name}: harmful requests answered (worst cases)", rows))
    return sections


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------- rendering ---

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;max-width:1080px;margin:2em auto;
padding:0 1.2em;color:#1d2327;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.1em}h2{border-bottom:2px solid #e3e7ea;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#5f6b73;margin-top:0}table{border-collapse:collapse;width:100%;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #dde3e7;padding:.35em .6em;text-align:left;vertical-align:top}th{background:#f3f6f8}
tr:nth-child(even) td{background:#fafbfc}.done{color:#1a7f37;font-weight:600}.failed{color:#cf222e;font-weight:600}
.skipped,.notrun{color:#6e7781}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1em}
figure{margin:0}figure.wide{grid-column:1/-1}
figure img{max-width:100%;border:1px solid #e3e7ea;border-radius:4px}figcaption{font-size:.85em;color:#5f6b73}
code{background:#f3f6f8;padding:.1em .3em;border-radius:3px}td.text{font-family:ui-monospace,Menlo,monospace;
font-size:.85em;white-space:pre-wrap}
"""


def _status(view: StageView, state: dict) -> str:
    record = state.get(view.name, {})
    if record.get("skipped") and view.status == "done":
        return "done (skipped: unchanged)"
    return view.status


def render_html(title: str, description: str | None, folder: Path, views: list[StageView], state: dict,
                figs: list[tuple[str, Path]]) -> str:
    e = html.escape
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_CSS}</style>"
           f"</head><body><h1>{e(title)}</h1>"]
    sub = f"Run folder <code>{e(str(folder))}</code>"
    if state.get("finished_at"):
        sub += f" · finished {e(state['finished_at'])}"
    total = sum(v.seconds or 0 for v in views if v.status == "done")
    out.append(f"<p class='sub'>{sub} · stage time {total:.0f} s</p>")
    if description:
        out.append(f"<p>{e(description)}</p>")
    out.append("<h2>Stages</h2><table><tr><th>#</th><th>stage</th><th>verb</th><th>status</th><th>time</th>"
               "<th>result</th></tr>")
    for i, v in enumerate(views, 1):
        status = _status(v, state.get("stages", {}))
        cls = status.split()[0].replace(" ", "")
        seconds = f"{v.seconds:.0f} s" if v.seconds is not None else "–"
        out.append(f"<tr><td>{i}</td><td>{e(v.name)}</td><td><code>heal {e(v.verb)}</code></td>"
                   f"<td class='{cls}'>{e(status)}</td><td>{seconds}</td><td>{e(v.headline)}</td></tr>")
    out.append("</table>")
    header, table = eval_table(views)
    rows = results_rows(views)
    if table or rows:
        out.append("<h2>Results</h2>")
    if table:
        out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in table]
        out.append("</table>")
    if rows:
        out.append("<table><tr><th>stage</th><th>measure</th><th>value</th></tr>")
        out += [f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>" for a, b, c in rows]
        out.append("</table>")
    if figs:
        out.append("<h2>Figures</h2><div class='grid'>")
        for caption, png in figs:
            data = base64.b64encode(png.read_bytes()).decode()
            wide = " class='wide'" if png.name.endswith("_curves.png") or png.name == EVAL_BARS else ""
            out.append(f"<figure{wide}><img src='data:image/png;base64,{data}' alt='{e(caption)}'>"
                       f"<figcaption>{e(caption)}</figcaption></figure>")
        out.append("</div>")
    sections = examples(views)
    if sections:
        out.append("<h2>Example generations</h2>")
        for caption, rows in sections:
            cols = list(rows[0])
            out.append(f"<h3>{e(caption)}</h3><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>")
            for r in rows:
                out.append("<tr>" + "".join(f"<td class='text'>{e(str(r[c]))}</td>" for c in cols) + "</tr>")
            out.append("</table>")
    out.append("<p class='sub'>Written by <code>heal pipeline</code> (heal.run_report) from the run folder; rebuild "
               f"with <code>python -m heal.run_report {e(str(folder))}</code>.</p></body></html>")
    return "\n".join(out)


def render_markdown(title: str, description: str | None, folder: Path, views: list[StageView], state: dict,
                    figs: list[tuple[str, Path]]) -> str:
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    out = [f"# {title}", "", f"Run folder `{folder}`" + (f", finished {state['finished_at']}"
                                                         if state.get("finished_at") else ""), ""]
    if description:
        out += [description, ""]
    out += ["## Stages", "", "| # | stage | verb | status | time | result |", "|---|---|---|---|---|---|"]
    for i, v in enumerate(views, 1):
        seconds = f"{v.seconds:.0f} s" if v.seconds is not None else "–"
        out.append(f"| {i} | {v.name} | heal {v.verb} | {_status(v, state.get('stages', {}))} | {seconds} | "
                   f"{cell(v.headline)} |")
    header, table = eval_table(views)
    rows = results_rows(views)
    if table or rows:
        out += ["", "## Results"]
    if table:
        out += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in table]
    if rows:
        out += ["", "| stage | measure | value |", "|---|---|---|"]
        out += [f"| {a} | {cell(b)} | {c} |" for a, b, c in rows]
    if figs:
        out += ["", "## Figures", ""]
        for caption, png in figs:
            rel = png.relative_to(folder) if png.is_relative_to(folder) else png
            out += [f"![{caption}]({rel})", ""]
    for caption, rows in examples(views):
        cols = list(rows[0])
        out += ["", f"### {caption}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        out += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write(folder: str | Path, stages: list[tuple[str, str, Path]], title: str | None = None,
          description: str | None = None) -> Path:
    """Write report.html and report.md into the run folder; returns the HTML path."""
    from heal.data.io import atomic_path

    folder = Path(folder)
    state = _json(folder / "pipeline_state.json")
    views = collect(folder, stages)
    title = title or f"HEAL run report: {folder.name}"
    figs = figures(views, folder)  # once: it draws the eval bars PNG both reports link to
    with atomic_path(folder / "report.html") as tmp:
        tmp.write_text(render_html(title, description, folder, views, state, figs), encoding="utf-8")
    with atomic_path(folder / "report.md") as tmp:
        tmp.write_text(render_markdown(title, description, folder, views, state, figs), encoding="utf-8")
    return folder / "report.html"


def main(argv: list[str] | None = None) -> None:
    """Rebuild the report of a finished (or failed) run from its pipeline.yaml."""
    import yaml

    from heal.errors import HealError

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m heal.run_report <run_dir>")
    folder = Path(argv[0])
    try:
        resolved = yaml.safe_load((folder / "pipeline.yaml").read_text(encoding="utf-8"))
    except OSError:
        raise HealError(f"{folder}: no pipeline.yaml here; give the run folder of a `heal pipeline` run") from None
    stages = [(name, spec["verb"], Path(spec["args"].get("output_dir") or spec["args"]["output_path"]))
              for name, spec in resolved["stages"].items()]
    print(write(folder, stages, resolved.get("title"), resolved.get("description")))


if __name__ == "__main__":
    main()
