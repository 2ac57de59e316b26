"""Each verb's contract, declared once next to its code: what it writes, which settings name its inputs, and how its
output reads in the run report. `heal pipeline`, the run report and the quickstart read these; none of them keeps a
table of verbs.

    CONTRACT = VerbContract(output="folder", inputs=("dataset_path",), models=("model_name_or_path",),
                            overwrite_field="overwrite_output_dir", summarize=summarize)   # in the verb's module

    contract_of("sft")      # the module heal.cli.VERBS names for the verb, imported; None if it is not a stage

A verb without a CONTRACT (serve, pipeline, quickstart) is not a pipeline stage. A new stage verb is its module
(make_parser, main, CONTRACT) plus its line in heal.cli.VERBS. Nothing heavy is imported here.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal


@dataclass
class StageSummary:
    """How one stage's output reads in the run report (heal.run_report); every part is optional."""

    headline: str = ""  # one line in the stage table
    metrics: dict = field(default_factory=dict)  # the stage's own numbers, keys as it records them (the quickstart)
    # captions and rows name no stage: the report puts the stage's name in front
    results: list[tuple[str, str]] = field(default_factory=list)  # (measure, value) rows of the results table
    task_metrics: dict[str, float] = field(default_factory=dict)  # compared across stages: the eval table and bars
    curves: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG): training curves, shown first
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, PNG): after the cross-stage bars
    examples: list[tuple[str, list[dict]]] = field(default_factory=list)  # (caption, rows) of example generations


@dataclass(frozen=True)
class VerbContract:
    """What a verb promises as a pipeline stage."""

    output: Literal["file", "folder"]  # one file (--output_path) or a folder (--output_dir)
    inputs: tuple[str, ...] = ()  # settings naming a file or folder the verb reads: each must exist or be made earlier
    models: tuple[str, ...] = ()  # settings naming a model: a local folder (checked as an input), Hub id or heal-tiny
    overwrite_field: str | None = None  # the flag that lets a rerun replace the verb's own earlier output
    summarize: Callable[[Path], StageSummary] | None = None  # output → its StageSummary
    also_writes: Callable[[dict], list[str]] | None = None  # the stage's arguments → files it writes besides output
    stage_module: str | None = None  # runs the verb as a stage when not its CLI module (annotate → its export)

    @property
    def output_field(self) -> str:
        return "output_path" if self.output == "file" else "output_dir"

    @property
    def path_fields(self) -> tuple[str, ...]:
        return self.inputs + self.models


def contract_of(verb: str) -> VerbContract | None:
    """The CONTRACT of the module heal.cli.VERBS names for `verb` (imported now); None if the verb is no stage."""
    from heal.cli import VERBS

    entry = VERBS.get(verb)
    if entry is None or entry.module is None:
        return None
    return getattr(importlib.import_module(entry.module), "CONTRACT", None)


def stage_verbs() -> list[str]:
    """Every verb that can be a pipeline stage (imports every verb's module: for error messages only)."""
    from heal.cli import VERBS

    return [name for name in VERBS if contract_of(name) is not None]


# --- reading a stage's output (for the summaries) ------------------------------------------------------------------

def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    try:
        with Path(path).open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rows.append(json.loads(line))
                if limit and len(rows) >= limit:
                    break
    except (OSError, ValueError):
        pass
    return rows


def fmt(value, digits: int = 3) -> str:
    """A number for a report cell: floats to `digits` decimals, missing values as –."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def records_file_summary(output: Path, noun: str) -> StageSummary:
    """A verb that writes one records file (prep, label): how many it wrote (its .meta.json sidecar, or the lines)."""
    meta = read_json(output.with_name(output.name + ".meta.json"))
    rows = sum(1 for _ in output.open(encoding="utf-8", errors="replace")) if output.suffix == ".jsonl" else None
    count = meta.get("records", meta.get("written", rows))
    return StageSummary(headline=f"{fmt(count)} {noun}" if count is not None else "")


def loss_curve(output: Path) -> list[tuple[str, Path]]:
    """The run folder's loss_curve.png (heal.models.run_folder), if it has one."""
    png = output / "loss_curve.png"
    return [("training loss", png)] if png.is_file() else []


def run_metrics(output: Path) -> tuple[dict, dict]:
    """(heal_run.json, its metrics) of a training run folder."""
    run = read_json(output / "heal_run.json")
    return run, run.get("metrics", {})
