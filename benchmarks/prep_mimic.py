"""Benchmark: `heal prep --dataset mimic` (streaming) against a naive full-load baseline, in one run.

    python benchmarks/prep_mimic.py                    # ~100 MB and ~1 GB synthetic discharge.csv files
    python benchmarks/prep_mimic.py --sizes_mb 20 100  # quicker

For each size it writes a synthetic MIMIC-IV-Note `discharge.csv` (heal.data.synthetic, no MIMIC text), then runs,
each in a fresh process whose whole process tree is sampled for resident memory:
- baseline: pandas reads the whole file, then the same per-note parsing (heal.data.mimic.note_to_records), then
  pandas writes the records;
- heal: `heal prep --dataset mimic` (chunked streaming), with 1 and with 2 worker processes.
It prints notes/s, peak RSS and the ratio to the baseline. Target: heal's peak RSS stays flat (< 1 GB) as the input
grows, and its throughput is at least the baseline's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

BASELINE = r"""
import sys
from collections import Counter
import pandas as pd
from heal.data.mimic import Filters, note_to_records
src, out = sys.argv[1], sys.argv[2]
frame = pd.read_csv(src, dtype=str, keep_default_na=False)          # the whole file in memory
rows = frame.to_dict("records")
drops, records = Counter(), []
for i, row in enumerate(rows):
    row["_row"] = f"row{i}"
    records.extend(note_to_records(row, ("bhc", "di"), Filters(), drops))
pd.DataFrame(records).to_csv(out, index=False)
"""


def measure(cmd: list[str]) -> tuple[float, int]:
    """Run `cmd`; return (wall seconds, peak RSS in bytes summed over the process and its children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return seconds, peak


def make_input(folder: Path, size_mb: int) -> tuple[Path, int]:
    from heal.data.synthetic import mimic_rows, write_mimic

    sample = list(mimic_rows(200, seed=0))
    bytes_per_note = sum(len(r["text"]) + 120 for r in sample) / len(sample)
    n = int(size_mb * 1e6 / bytes_per_note)
    path = folder / f"discharge_{size_mb}mb.csv"
    if not path.exists():
        write_mimic(path, n, seed=0)
    return path, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes_mb", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--work_dir", default=None, help="where the synthetic inputs go (default: a temp folder)")
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="heal-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    heal = [sys.executable, "-m", "heal.cli", "prep", "--dataset", "mimic", "--progress", "false"]
    rows = []
    for size in args.sizes_mb:
        src, n = make_input(work, size)
        real_mb = src.stat().st_size / 1e6
        runs = {
            "baseline (pandas full load)": [sys.executable, "-c", BASELINE, str(src), str(work / "base.csv")],
            "heal prep (stream, 1 proc)": [*heal, "--input_path", str(src), "--output_path", str(work / "h1.csv")],
            "heal prep (stream, 2 procs)": [*heal, "--input_path", str(src), "--num_proc", "2",
                                            "--output_path", str(work / "h2.csv")],
        }
        results = {name: measure(cmd) for name, cmd in runs.items()}
        base_s, base_rss = results["baseline (pandas full load)"]
        for name, (seconds, rss) in results.items():
            rows.append((f"{real_mb:,.0f} MB", f"{n:,}", name, f"{n / seconds:,.0f}", f"{(base_s / seconds):.2f}x",
                         f"{rss / 2**20:,.0f}", f"{rss / base_rss:.2f}x"))
        for name in ("base.csv", "h1.csv", "h2.csv"):
            (work / name).unlink(missing_ok=True)
            Path(str(work / name) + ".meta.json").unlink(missing_ok=True)
    header = ("input", "notes", "method", "notes/s", "speed vs baseline", "peak RSS MiB", "RSS vs baseline")
    print(f"\nheal prep --dataset mimic benchmark ({os.cpu_count()} CPUs)\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
