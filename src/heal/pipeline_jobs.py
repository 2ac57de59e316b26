"""`heal pipeline --jobs N`: the stages whose inputs are ready run side by side, each a child process with its own log.

    heal pipeline experiments/configs/quickstart.yaml --jobs 2

heal.pipeline decides what a stage is, whether it runs (not selected, unchanged) and what pipeline_state.json records;
this module starts the children, watches them and stops them. A stage starts once every stage it `needs` has
finished, at most N at a time, in file order among the ready ones; after a failure no stage starts and the running
ones are waited for. Ctrl-C stops every child (terminate, then kill a few seconds later).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

STOP_GRACE_SECONDS = 5  # after terminate(), before kill(): time for a child to remove its partial output
POLL_SECONDS = 0.1


@dataclass
class Child:
    stage: object  # heal.pipeline.Stage: what it needs is its .name and .needs
    process: subprocess.Popen
    log: Path
    slot: int  # 0 … N-1: which share of the GPUs it has
    started: float


def run_side_by_side(stages: list, jobs: int, begin: Callable, end: Callable) -> Child | None:
    """Run `stages` (each with .name and .needs, earlier stages' names) `jobs` at a time; returns the first child that
    failed (no stage started after it), else None. begin(stage) → (command, log file), or None when the stage does
    not run; end(stage, exit code or None when stopped, seconds, log file) records how it ended."""
    waiting, finished, running = list(stages), set(), []
    failed: Child | None = None
    gpus = _gpu_count()
    try:
        while True:
            while failed is None and len(running) < jobs:
                stage = next((s for s in waiting if finished.issuperset(s.needs)), None)
                if stage is None:
                    break
                waiting.remove(stage)
                begun = begin(stage)
                if begun is None:  # not selected or unchanged: as good as finished for the stages after it
                    finished.add(stage.name)
                    continue
                slot = min(set(range(jobs)) - {child.slot for child in running})
                running.append(_start(stage, *begun, slot, child_env(slot, jobs, gpus)))
            if not running:
                return failed
            time.sleep(POLL_SECONDS)
            for child in [c for c in running if c.process.poll() is not None]:
                running.remove(child)
                end(child.stage, child.process.returncode, time.perf_counter() - child.started, child.log)
                if child.process.returncode == 0:
                    finished.add(child.stage.name)
                elif failed is None:
                    failed = child
    except BaseException:  # Ctrl-C (or a fault here): no child outlives the pipeline
        _stop(running)
        for child in running:
            end(child.stage, None, time.perf_counter() - child.started, child.log)
        raise


def child_env(slot: int, jobs: int, gpus: int) -> dict[str, str]:
    """The environment of the child in `slot`: a 1/jobs share of the cores (unless OMP_NUM_THREADS is set) and, when
    CUDA_VISIBLE_DEVICES is unset and there are at least `jobs` GPUs, GPUs slot, slot + jobs, slot + 2·jobs …"""
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # the log shows each line as it is printed
    if "OMP_NUM_THREADS" not in os.environ:
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    if "CUDA_VISIBLE_DEVICES" not in os.environ and gpus >= jobs:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, range(slot, gpus, jobs)))
    return env


def last_lines(log: Path, n: int) -> list[str]:
    """The log's last `n` non-empty lines (a progress bar's line as it was last drawn)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line.rstrip() for line in text.splitlines() if line.strip()][-n:]  # splitlines also splits at \r


def _gpu_count() -> int:
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return 0  # the user has chosen the devices: every child sees them all
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count()


def _start(stage, command: list[str], log: Path, slot: int, env: dict[str, str]) -> Child:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
    return Child(stage, process, log, slot, time.perf_counter())


def _stop(children: list[Child]) -> None:
    for child in children:
        child.process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
