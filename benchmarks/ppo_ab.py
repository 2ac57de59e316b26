"""Interleaved in-process A/B of `heal ppo` variants on ppo_vs_trl.py's heal-tiny workload: s/update per variant.

    OMP_NUM_THREADS=1 python benchmarks/ppo_ab.py --variant '' --variant '--attn_implementation eager' --updates 8

Every variant is built in one process (same models, prompts and knobs as benchmarks/ppo_vs_trl.py, plus its flags);
then update i of every variant runs back to back, in a rotating order, so load from other jobs on a shared machine
falls on all alike. Update 1 of each is a warm-up (for torch.compile: its compile time, reported separately). Prints
each variant's median s/update of the timed updates and its ratio to the first variant.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ppo_vs_trl as bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", default=[], metavar="FLAGS",
                        help="extra `heal ppo` flags of one variant (repeatable; '' is the default)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--response_length", type=int, default=32)
    parser.add_argument("--updates", type=int, default=6, help="timed updates per variant (after one warm-up)")
    args = parser.parse_args()
    variants = args.variant or [""]
    paths = bench.prepare()
    from heal.ppo.train import ppo_update

    runs = [bench.heal_run(args, paths, bench.WORK / "ab", shlex.split(flags)) for flags in variants]
    times: list[list[float]] = [[] for _ in variants]
    for i in range(args.updates + 1):
        for k in range(len(variants)):
            j = (i + k) % len(variants)  # rotate who goes first
            started = time.perf_counter()
            ppo_update(runs[j])
            runs[j].step += 1
            times[j].append(time.perf_counter() - started)
    base = statistics.median(times[0][1:])
    for flags, t in zip(variants, times):
        median = statistics.median(t[1:])
        print(f"{flags or '(default)'}: warm-up {t[0]:.2f} s, median {median:.3f} s/update over {len(t) - 1} "
              f"({base / median:.2f}× the first variant's speed); all: {', '.join(f'{x:.2f}' for x in t[1:])}")


if __name__ == "__main__":
    main()
