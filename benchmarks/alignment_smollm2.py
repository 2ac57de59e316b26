"""Benchmark: the real-model alignment run (SmolLM2-135M-Instruct, heal/presets/align_smollm2.yaml) end to end.

    python benchmarks/alignment_smollm2.py                         # → runs/align_smollm2 (resumes an unfinished run)
    python benchmarks/alignment_smollm2.py --output_dir /tmp/align --force

Runs `heal quickstart --preset smollm2` (base → SFT → RLHF / RLAIF / d-RLAIF / DPO, eval and red-team of each on
held-out prompts; it needs ../shared/data) and prints, from the run folder: the comparison table with its targets
(heal.frontier; with the RLAIF judge's agreement with human labels on XSTest answers of two other models, which
benchmarks/judge_agreement.py writes into the run folder), the wall time of every stage, the whole run's wall clock
(stages side by side: the quickstart runs this preset with --jobs 2) against the 60-minute CPU target, and the load
average (other jobs on a shared machine slow every stage). Stages already done in --output_dir are skipped by the
pipeline and keep the time they took when they ran; the wall clock counts only the time in which some stage ran.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_MINUTES = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", default="runs/align_smollm2")
    parser.add_argument("--force", action="store_true", help="run every stage again")
    args = parser.parse_args()
    start = time.perf_counter()
    argv = [sys.executable, "-m", "heal.cli", "quickstart", "--preset", "smollm2", "--output_dir", args.output_dir,
            *(["--force"] if args.force else [])]
    done = subprocess.run(argv, cwd=REPO, env={**os.environ, "TQDM_DISABLE": "1"})
    if done.returncode:
        raise SystemExit(f"heal quickstart --preset smollm2 failed (exit {done.returncode})")
    wall = (time.perf_counter() - start) / 60
    folder = REPO / args.output_dir
    # the RLAIF judge against human labels on XSTest answers of two other models (cross-file and in-sample), into
    # the run folder, where heal.frontier reads it; then the table again with that line
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "judge_agreement.py"), "--json",
                    str(folder / "data" / "judge_agreement_xstest.json")], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    sys.path.insert(0, str(REPO / "src"))
    from heal.frontier import write

    print(write(folder))
    data = json.loads((folder / "frontier.json").read_text())
    print("\n| stage | seconds |\n|---|---:|")
    for stage, seconds in data["stage_seconds"].items():
        print(f"| {stage} | {seconds:.0f} |")
    total = data["total_minutes"]
    verdict = "met" if total is not None and total <= TARGET_MINUTES else "MISSED"
    print(f"\nwhole run (wall clock while any stage ran; stages side by side with the quickstart's --jobs 2): {total} "
          f"min, target ≤ {TARGET_MINUTES} min on 2 CPU cores: {verdict}; stage times sum to "
          f"{data['stage_minutes_sum']} min; this invocation {wall:.1f} min; load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
