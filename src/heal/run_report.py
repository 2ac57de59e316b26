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
import sys
from dataclasses import dataclass, field
from pathlib import Path

from heal.contracts import StageSummary, contract_of, fmt, read_json

EVAL_BARS = "report_eval_bars.png"


@dataclass
class StageView:
    name: str
    verb: str
    output: Path
    status: str = "not run"
    seconds: float | None = None
    summary: StageSummary = field(default_factory=StageSummary)  # what the stage's own files say (its contract)

    @property
    def headline(self) -> str:
        return self.summary.headline


def collect(folder: Path, stages: list[tuple[str, str, Path]]) -> list[StageView]:
    """One view per declared stage, from the pipeline state and the stage's own output files (read by the
    `summarize` of the verb's contract, heal.contracts)."""
    state = read_json(folder / "pipeline_state.json").get("stages", {})
    views = []
    for name, verb, output in stages:
        record = state.get(name, {})
        view = StageView(name, verb, Path(output), record.get("status", "not run"), record.get("seconds"))
        contract = contract_of(verb)
        if record.get("status") == "failed":
            view.summary = StageSummary(headline=record.get("error", ""))
        elif Path(output).exists() and contract is not None and contract.summarize is not None:
            view.summary = contract.summarize(Path(output))
        views.append(view)
    return views


# ------------------------------------------------------------------------------------------------- the results ---

def eval_table(views: list[StageView]) -> tuple[list[str], list[list[str]]]:
    """Task metrics with one column per stage that reports them (the eval stages): (header, rows)."""
    evals = [v for v in views if v.summary.task_metrics]
    keys = sorted({k for v in evals for k in v.summary.task_metrics})
    if not keys:
        return [], []
    return ["measure", *(v.name for v in evals)], [[k, *(fmt(v.summary.task_metrics.get(k)) for v in evals)]
                                                    for k in keys]


def results_rows(views: list[StageView]) -> list[list[str]]:
    """[stage, measure, value] rows of every stage's summary, in stage order."""
    return [[v.name, measure, value] for v in views for measure, value in v.summary.results]


def eval_bars(views: list[StageView], folder: Path) -> Path | None:
    """Accuracy and macro-F1 of every PubMedQA eval stage side by side (one PNG in the run folder)."""
    evals = [v for v in views if any(k.endswith("/accuracy") for k in v.summary.task_metrics)]
    if not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for v in evals for k in v.summary.task_metrics if k.endswith(("/accuracy", "/macro_f1"))})
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(keys) * len(evals) / 2 + 2), 3.2))
    width = 0.8 / len(evals)
    for i, v in enumerate(evals):
        values = [v.summary.task_metrics.get(k, 0.0) for k in keys]
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
    """(caption, PNG) in reading order: training curves, eval bars, then each stage's other figures."""
    found = [(f"{v.name}: {caption}", png) for v in views for caption, png in v.summary.curves]
    bars = eval_bars(views, folder)
    if bars:
        found.append(("Eval: accuracy and macro-F1 per stage", bars))
    found += [(f"{v.name}: {caption}", png) for v in views for caption, png in v.summary.figures]
    return found


def examples(views: list[StageView]) -> list[tuple[str, list[dict]]]:
    """Example generations: before/after for RL stages, the red-team worst cases (each verb's summary picks)."""
    return [(f"{v.name}: {caption}", rows) for v in views for caption, rows in v.summary.examples]


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
    state = read_json(folder / "pipeline_state.json")
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
