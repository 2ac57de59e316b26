"""`heal quickstart` wall time and peak memory, against its budget (5 minutes, 3 GB on a 2-core CPU) and against the
same stages run the way one would by hand: one `heal <verb>` process per stage.

    python benchmarks/quickstart.py                 # the quickstart, cold (every stage runs), ≈ 4–5 minutes
    python benchmarks/quickstart.py --per_process   # also the one-process-per-stage baseline (twice as long)

Peak RSS is the resident memory of the largest process (the quickstart runs every stage in one process; the
baseline's figure is its largest stage). Per-stage seconds come from the run's pipeline_state.json. Nothing here is
asserted by a test; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
HEAL = [sys.executable, "-m", "heal.cli"]
BUDGET_SECONDS, BUDGET_RSS_MB = 300, 3 * 1024


def measured(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of `command` run in a fresh child (this process has run none before it)."""
    script = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
              "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
              "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); "
              "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script, *command], env=ENV, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:5])} … failed:\n{done.stderr[-3000:]}")
    seconds, rss = done.stdout.split()
    return float(seconds), float(rss)


def quickstart(folder: Path) -> tuple[float, float, dict]:
    seconds, rss = measured([*HEAL, "quickstart", "--output_dir", str(folder), "--force"])
    stages = json.loads((folder / "pipeline_state.json").read_text())["stages"]
    return seconds, rss, {name: s["seconds"] for name, s in stages.items()}


def per_process(folder: Path, stage_configs: Path) -> tuple[float, float]:
    """Every stage of the same run as its own `heal <verb> --config stages/<name>.yaml` process."""
    import yaml

    resolved = yaml.safe_load((stage_configs.parent / "pipeline.yaml").read_text())
    total, peak = 0.0, 0.0
    for name, spec in resolved["stages"].items():
        args = spec["args"]
        text = yaml.safe_dump(args).replace(str(stage_configs.parent), str(folder))  # same layout, another folder
        config = folder / "stages" / f"{name}.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(text)
        (folder / "data").mkdir(exist_ok=True)
        seconds, rss = measured([*HEAL, spec["verb"], "--config", str(config)])
        total, peak = total + seconds, max(peak, rss)
    return total, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per_process", action="store_true", help="Also run the one-process-per-stage baseline.")
    parser.add_argument("--keep", type=Path, help="Keep the quickstart run folder here (default: a temp folder).")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="heal-quickstart-bench-"))
    run = args.keep or work / "quickstart"
    try:
        seconds, rss, stages = quickstart(run)
        rows = [("heal quickstart (one process, every stage)", seconds, rss)]
        if args.per_process:
            base_seconds, base_rss = per_process(work / "per_process", run / "stages")
            rows.append(("same stages, one `heal <verb>` process each", base_seconds, base_rss))
        print(f"\nheal quickstart on {os.cpu_count()} CPUs (budget: {BUDGET_SECONDS} s, {BUDGET_RSS_MB} MiB)\n")
        print("| run | wall s | vs budget | vs quickstart | peak RSS MiB | vs budget |")
        print("|---|---|---|---|---|---|")
        for name, s, r in rows:
            print(f"| {name} | {s:.0f} | {s / BUDGET_SECONDS:.2f}x | {s / seconds:.2f}x | {r:.0f} | "
                  f"{r / BUDGET_RSS_MB:.2f}x |")
        print("\n| stage | seconds |\n|---|---|")
        for name, s in stages.items():
            print(f"| {name} | {s:.1f} |")
        if args.keep:
            print(f"\nreport: {run / 'report.html'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
