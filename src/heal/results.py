"""Run folders and the files every eval writes: JSON (machine), Markdown (human), PNG plots, per-item JSONL.

    with ResultsFolder("experiments/results/eval-pqa") as run:
        run.json("metrics.json", metrics); run.markdown("report.md", text); run.figure("confusion.png", fig)
    # only now do the files appear in the folder, all together

Files are staged in a hidden folder beside the results and moved into place when the block ends without error, so
a failed run leaves no partial results (and never half of a previous run's files replaced).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

from heal.data.io import write_json
from heal.errors import HealError

RESULTS_ROOT = Path("experiments") / "results"


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe short form of a model or data path: 'models/policy/pqa_sft' -> 'pqa_sft'."""
    name = Path(str(text).rstrip("/")).name or str(text)
    name = re.sub(r"\.(csv|jsonl|json|parquet)(\.gz)?$", "", name)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:limit] or "run"


def default_output_dir(stage: str, model_path: str, data_path: str, run_name: str | None = None) -> Path:
    return RESULTS_ROOT / (run_name or f"{stage}-{slug(model_path)}-{slug(data_path)}")


MANIFEST = ".heal_results.json"  # the files the last run published here (stale ones are removed by the next run)


def check_output_dir(folder: str | Path) -> Path:
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise HealError(f"--output_dir {folder}: is a file; give a folder")
    if (folder / "config.json").exists() or (folder / "heal_run.json").exists():
        raise HealError(f"--output_dir {folder}: is a model or training-run folder; write results elsewhere (e.g. "
                        "experiments/results/<name>) so its files are never overwritten")
    return folder


class ResultsFolder:
    """Stage result files, then publish them all at once (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = check_output_dir(folder)
        self.staging = self.folder / f".staging-{os.getpid()}"
        self.written: list[str] = []

    def __enter__(self) -> "ResultsFolder":
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._publish()
        shutil.rmtree(self.staging, ignore_errors=True)

    def _publish(self) -> None:
        """Move the staged files in; drop files an earlier run published here that this run did not write."""
        manifest = self.folder / MANIFEST
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else []
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = []
        for name in self.written:
            os.replace(self.staging / name, self.folder / name)
        for name in set(previous) - set(self.written):
            if "/" not in name and name != MANIFEST:
                (self.folder / name).unlink(missing_ok=True)
        write_json(manifest, sorted(self.written))

    def path(self, name: str) -> Path:
        self.written.append(name)
        return self.staging / name

    def json(self, name: str, obj: Any) -> None:
        write_json(self.path(name), obj)

    def markdown(self, name: str, text: str) -> None:
        self.path(name).write_text(text.rstrip() + "\n", encoding="utf-8")

    def jsonl(self, name: str, rows: Sequence[dict]) -> None:
        with open(self.path(name), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)

    def figure(self, name: str, fig) -> None:
        import matplotlib.pyplot as plt

        fig.savefig(self.path(name), format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)

    def config(self, *configs: Any) -> None:
        from heal.config import save_resolved_config

        save_resolved_config(self.path("resolved_config.yaml"), *configs)


# --- Markdown --------------------------------------------------------------------------------------------------------

def fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "/").replace("\n", " ")


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def clip(text: str, limit: int = 300) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- plots -----------------------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def heatmap(matrix: Sequence[Sequence[float | None]], rows: Sequence[str], columns: Sequence[str], title: str,
            value_format: str = "{:.2f}", vmax: float | None = None, colorbar: str = ""):
    """A labelled heatmap with the value written in each cell (None cells are blank)."""
    import numpy as np

    plt = _pyplot()
    data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    label_inches = 0.07 * max((len(str(r)) for r in rows), default=10)  # long row labels must not squash the cells
    fig, ax = plt.subplots(figsize=(max(4.0, 0.75 * len(columns) + 1.8 + label_inches),
                                    max(2.5, 0.38 * len(rows) + 1.5)))
    image = ax.imshow(data, cmap="Reds", vmin=0, vmax=vmax if vmax is not None else np.nanmax(data) or 1,
                      aspect="auto")
    ax.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels=rows, fontsize=8)
    limit = image.get_clim()[1]
    for (i, j), value in np.ndenumerate(data):
        if not np.isnan(value):
            ax.text(j, i, value_format.format(value), ha="center", va="center", fontsize=7,
                    color="white" if value > 0.6 * limit else "black")
    if colorbar:
        fig.colorbar(image, ax=ax, label=colorbar)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_figure(matrix: Sequence[Sequence[int]], labels: Sequence[str], columns: Sequence[str], title: str):
    fig = heatmap(matrix, [f"gold {l}" for l in labels], [f"pred {c}" for c in columns], title, "{:.0f}",
                  colorbar="items")
    fig.axes[0].set_xticklabels([f"pred {c}" for c in columns], rotation=0, ha="center")
    return fig


def bar_figure(groups: dict[str, dict[str, float]], title: str, ylabel: str, ylim: tuple[float, float] = (0, 1),
               errors: dict[str, dict[str, Sequence[float] | None]] | None = None):
    """Grouped bars: {group: {series: value}} (e.g. {perturbation: {accuracy: …, consistency: …}}); `errors`
    {group: {series: (low, high)}} draws each interval as an error bar."""
    import numpy as np

    plt = _pyplot()
    names = list(groups)
    series = list(dict.fromkeys(s for values in groups.values() for s in values))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(names) + 1.5), 3.6))
    for k, name in enumerate(series):
        xs = np.arange(len(names)) + (k - (len(series) - 1) / 2) * width
        values = [groups[g].get(name, 0.0) for g in names]
        yerr = None
        if errors:
            bounds = [(errors.get(g) or {}).get(name) or (v, v) for g, v in zip(names, values)]
            yerr = [[max(0.0, v - lo) for v, (lo, _) in zip(values, bounds)],
                    [max(0.0, hi - v) for v, (_, hi) in zip(values, bounds)]]
        ax.bar(xs, values, width, label=name, yerr=yerr, capsize=3 if yerr else 0)
    ax.set_xticks(range(len(names)), labels=names, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def histogram_figure(series: dict[str, Sequence[float]], title: str, xlabel: str):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, values in series.items():
        if values:
            ax.hist(list(values), bins=20, alpha=0.55, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("items")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
