"""The run-folder protocol: a training run's output folder — who owns it, its metrics, its loss curve, its model card,
its final model. When each step happens is heal.runs' (the recipe layer every training verb uses).

Every training stage (sft, reward, dpo, grpo, ppo) writes the same layout:

    <output_dir>/
      heal_run.json          what run this is (stage, model, data) and its status: running | complete | failed
      resolved_config.yaml   every setting, resolved; `heal <stage> --config resolved_config.yaml` reruns it
      metrics.jsonl          one JSON object per log step, namespaced keys (train/loss, eval/loss, …)
      checkpoint-N/          Trainer checkpoints (resume with --resume_from_checkpoint last)
      config.json, model.safetensors, tokenizer.json, …   the final model: only once the run is complete
      README.md              the model card (base model, data, stage, config, metrics)
      loss_curve.png

While a run is in progress the folder holds no final model: the model is written to a staging folder and moved into
place file by file, weights last, and `heal_run.json` says `complete` only after that. A crashed run therefore never
leaves something that loads as a finished model.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

from heal.data.io import atomic_path, write_json
from heal.errors import HealError

RUN_FILE = "heal_run.json"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "resolved_config.yaml"
CURVE_FILE = "loss_curve.png"
STAGING = ".staging"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = re.compile(r"(\.safetensors|\.bin|\.pt|\.pth)$|\.index\.json$")


# --- who owns the folder -------------------------------------------------------------------------------------------

def read_run(folder: str | Path) -> dict | None:
    path = Path(folder) / RUN_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HealError(f"{path}: corrupt run file; delete {folder} or pick another --output_dir") from None


def checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `folder`, oldest first.

    A checkpoint is complete once its trainer_state.json (the Trainer writes it last) parses: a run killed while
    saving leaves a checkpoint without it, which is skipped.
    """
    found = []
    folder = Path(folder)
    if not folder.is_dir():
        return []
    for child in folder.iterdir():
        match = _CHECKPOINT.match(child.name)
        if match and child.is_dir():
            try:
                json.loads((child / "trainer_state.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue
            found.append((int(match.group(1)), child))
    return sorted(found)


def check_output_dir(folder: str | Path, fingerprint: dict, resume: bool, overwrite: bool) -> str:
    """Decide what to do with `folder`: 'new', 'resume' or 'overwrite'; raise a HealError if it is not ours to use.

    `fingerprint` names the run (stage, model, data): a folder holding a run with another fingerprint is never reused
    without --overwrite_output_dir, and a folder holding anything that is not a HEAL run is never touched.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise HealError(f"--output_dir {folder}: is a file; give a folder")
    if not folder.exists() or not any(folder.iterdir()):
        if resume:
            raise HealError(f"--output_dir {folder}: has no checkpoint to resume from; drop --resume_from_checkpoint")
        return "new"
    run = read_run(folder)
    if run is None:
        raise HealError(f"--output_dir {folder}: not empty and not a HEAL run folder; pick a new or empty folder")
    if overwrite:
        return "overwrite"
    different = {k: (run.get("fingerprint", {}).get(k), v) for k, v in fingerprint.items()
                 if run.get("fingerprint", {}).get(k) != v}
    if different:
        what = "; ".join(f"{k} {old!r} here vs {new!r} now" for k, (old, new) in sorted(different.items()))
        raise HealError(f"--output_dir {folder}: holds a different run ({what}); pick a new --output_dir or pass "
                        "--overwrite_output_dir")
    if resume:
        return "resume"
    done = checkpoints(folder)
    if run.get("status") == "complete":
        raise HealError(f"--output_dir {folder}: already holds a finished run of this config; pass "
                        "--overwrite_output_dir to train again (or --resume_from_checkpoint last to train further)")
    if done:
        raise HealError(f"--output_dir {folder}: holds an unfinished run (checkpoint-{done[-1][0]}); pass "
                        "--resume_from_checkpoint last to continue it, or --overwrite_output_dir to start over")
    return "overwrite"  # an earlier attempt died before its first checkpoint: nothing worth keeping


def claim_output_dir(folder: str | Path, mode: str, fingerprint: dict, stage: str) -> None:
    """Main process only: clear what must go and mark the folder as a running run."""
    folder = Path(folder)
    if mode == "overwrite":
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keep = {RUN_FILE, METRICS_FILE} if mode == "resume" else set()
    for child in folder.iterdir():  # a previous final model must not outlive the run that replaces it
        if child.name in keep or _CHECKPOINT.match(child.name):
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    previous = read_run(folder) or {}
    write_json(folder / RUN_FILE, {"stage": stage, "status": "running", "fingerprint": fingerprint,
                                   "attempts": previous.get("attempts", 0) + 1})


def update_run(folder: str | Path, **fields: Any) -> dict:
    run = {**(read_run(folder) or {}), **fields}
    write_json(Path(folder) / RUN_FILE, run)
    return run


def resolve_checkpoint(folder: str | Path, value: str | None) -> str | None:
    """--resume_from_checkpoint: None, 'last'/'true' (newest complete checkpoint in `folder`) or a path."""
    if value is None or str(value).lower() in ("", "false", "none", "no"):
        return None
    if str(value).lower() in ("last", "true", "latest", "yes"):
        done = checkpoints(folder)
        if not done:
            raise HealError(f"--output_dir {folder}: no complete checkpoint-N to resume from; train without "
                            "--resume_from_checkpoint")
        return str(done[-1][1])
    path = Path(value)
    if not (path / "trainer_state.json").exists():
        raise HealError(f"--resume_from_checkpoint {value}: not a complete checkpoint folder (no trainer_state.json)")
    return str(path)


# --- metrics --------------------------------------------------------------------------------------------------------

def namespaced(logs: dict[str, float]) -> dict[str, float]:
    """Trainer log keys → HEAL's: loss → train/loss (per logging window), train_loss → train/mean_loss (the whole
    run), eval_loss → eval/loss, eval_before_loss → eval_before/loss (before the first step)."""
    out = {}
    logs = {("train_mean_loss" if k == "train_loss" else k): v for k, v in logs.items()}  # the run's average loss
    before = any(key.startswith("eval_before_") for key in logs)  # TRL adds its eval extras as eval_*
    for key, value in logs.items():
        if before and key.startswith("eval_") and not key.startswith("eval_before_"):
            key = "eval_before_" + key[len("eval_"):]
        if key == "epoch":
            out[key] = value
            continue
        for prefix in ("eval_before", "eval", "train"):
            if key.startswith(prefix + "_"):
                out[f"{prefix}/{key[len(prefix) + 1:]}"] = value
                break
        else:
            out[f"train/{key}"] = value
    return out


def append_metrics(folder: str | Path, step: int, logs: dict[str, float]) -> None:
    row = {"step": step, **{k: v for k, v in namespaced(logs).items() if _finite(v)}}
    with open(Path(folder) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def append_row(folder: str | Path, step: int, metrics: dict) -> None:
    """A row of metrics whose keys are already HEAL's (the RL verbs' own loops and held-out scores)."""
    row = {"step": step, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}}
    with open(Path(folder) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def read_metrics(folder: str | Path) -> list[dict]:
    path = Path(folder) / METRICS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
    return rows


def truncate_metrics(folder: str | Path, last_step: int) -> None:
    """On resume: forget what was logged after the checkpoint we go back to (it will be logged again)."""
    rows = [r for r in read_metrics(folder) if r.get("step", 0) <= last_step]
    with atomic_path(Path(folder) / METRICS_FILE) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def plot_loss_curve(folder: str | Path, title: str) -> Path | None:
    """loss_curve.png: train loss per logged step and eval loss per evaluation (step 0 = before training)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(folder)
    train = [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]
    evals = [(r["step"], r[k]) for r in rows for k in ("eval_before/loss", "eval/loss") if k in r]
    if not train and not evals:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue")
    if evals:
        ax.plot(*zip(*sorted(evals)), "o-", label="eval loss", color="tab:orange")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (completion tokens)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, Path(folder) / CURVE_FILE)


def save_figure(fig, path: Path, dpi: int | None = None) -> Path:
    """Lay out, write `fig` as a PNG at `path` atomically (no half-written image on a crash) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi or "figure")
    plt.close(fig)
    return path


# --- config and final model ----------------------------------------------------------------------------------------

def config_dict(*configs: Any) -> dict:
    """Merge dataclass configs (TrainingArguments via its to_dict: enums as values) into one YAML-safe dict."""
    from heal.config import to_dict

    return to_dict(*configs)


def write_config(folder: str | Path, config: dict) -> Path:
    import yaml

    path = Path(folder) / CONFIG_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def staging_dir(folder: str | Path) -> Path:
    path = Path(folder) / STAGING
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def publish(folder: str | Path) -> list[str]:
    """Move the staged final model into `folder`: everything else first, weights last, then drop the staging folder.

    Each move is an atomic rename, so a crash leaves either no weights (the folder does not load as a model) or a
    complete model whose heal_run.json still says `running`.
    """
    folder = Path(folder)
    staged = sorted((folder / STAGING).iterdir(), key=lambda p: (bool(_WEIGHTS.search(p.name)), p.name))
    for path in staged:
        target = folder / path.name
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(path, target)
    shutil.rmtree(folder / STAGING)
    return [p.name for p in staged]
