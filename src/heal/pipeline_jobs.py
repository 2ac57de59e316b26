"""`heal pipeline --jobs N`: the stages whose inputs are ready run side by side, each a child process with its own log.

    heal pipeline experiments/configs/quickstart.yaml --jobs 2

heal.pipeline decides what a stage is, whether it runs (not selected, unchanged) and what pipeline_state.json records;
this module starts the children, watches them and stops them. A stage starts once every stage it `needs` has
finished, at most N at a time, in file order among the ready ones; after a failure no stage starts and the running
ones are waited for. Ctrl-C, or a SIGTERM to the pipeline, stops every child (terminate, then kill a few seconds
later) and records the running stages as interrupted.

Cores follow the work: each child starts with a 1/N share of the torch threads, and while fewer than N stages run and
none is ready to start (a long stage that the rest waits for, or the last ones), the running children share every
core. The pipeline writes a child's new thread count to a file named by HEAL_THREADS_FILE and sends it SIGURG; the
child (heal.cli, through follow_thread_share) calls torch.set_num_threads. SIGURG because its default action is to
ignore it: a process that does not listen (yet, or any more while Python shuts down, or a launcher such as
`accelerate launch` whose workers listen instead) is never killed by it. When a stage starts again they go back to
their share. Intra-op threads scale about linearly here: one SmolLM2 SFT step, 1 → 2 threads, 10.5 → 5.4 s.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

STOP_GRACE_SECONDS = 5  # after terminate(), before kill(): time for a child to remove its partial output
POLL_SECONDS = 0.1
THREADS_ENV = "HEAL_THREADS_FILE"  # a child's torch thread count: the pipeline writes it, the child reads it on SIGURG
THREADS_SIGNAL = getattr(signal, "SIGURG", None)  # ignored by default (None where there is no such signal: Windows)


@dataclass
class Child:
    stage: object  # heal.pipeline.Stage: what it needs is its .name and .needs
    process: subprocess.Popen
    log: Path
    slot: int  # 0 … N-1: which share of the GPUs it has
    started: float
    threads: int | None = None  # torch threads it was last given
    threads_file: Path | None = None  # where it reads them; None when the user set OMP_NUM_THREADS


def run_side_by_side(stages: list, jobs: int, begin: Callable, end: Callable) -> Child | None:
    """Run `stages` (each with .name and .needs, earlier stages' names) `jobs` at a time; returns the first child that
    failed (no stage started after it), else None. begin(stage) → (command, log file), or None when the stage does
    not run; end(stage, exit code or None when stopped, seconds, log file) records how it ended."""
    waiting, finished, running = list(stages), set(), []
    failed: Child | None = None
    gpus = _gpu_count()
    threads_dir = Path(tempfile.mkdtemp(prefix="heal-threads-"))
    on_sigterm = _stop_on_sigterm()
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
                env = child_env(slot, jobs, gpus)
                if "OMP_NUM_THREADS" not in os.environ:  # the user's choice is left alone
                    env[THREADS_ENV] = str(threads_dir / stage.name)
                    Path(env[THREADS_ENV]).write_text(env["OMP_NUM_THREADS"])
                running.append(_start(stage, *begun, slot, env))
            if not running:
                return failed
            idle_cores = failed is not None or not any(finished.issuperset(s.needs) for s in waiting)
            share_cores(running, jobs if not idle_cores else len(running))
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
    finally:
        shutil.rmtree(threads_dir, ignore_errors=True)
        if on_sigterm is not None:
            signal.signal(signal.SIGTERM, on_sigterm)


def _stop_on_sigterm():
    """Make SIGTERM (`kill`, a job scheduler's stop) end the pipeline as Ctrl-C does, through the clean-up above;
    returns the handler it replaces, or None where it cannot (not the main thread)."""

    def stop(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:
        return None


def share_cores(running: list[Child], ways: int) -> None:
    """Give each running child 1/ways of the cores (the first ones any remainder), telling those whose count changes:
    the new count goes to its threads file, then the signal. A child that is not listening yet reads the file when
    it starts to."""
    cores = os.cpu_count() or 1
    for i, child in enumerate(sorted(running, key=lambda c: c.slot)):
        want = max(1, cores // ways + (i < cores % ways))
        if child.threads_file is None or child.threads == want or THREADS_SIGNAL is None:
            continue
        child.threads_file.write_text(str(want))
        child.threads = want
        if child.process.poll() is None:
            child.process.send_signal(THREADS_SIGNAL)


def follow_thread_share() -> None:
    """In a --jobs child: apply the thread counts the pipeline sends (SIGURG → the count in $HEAL_THREADS_FILE) to
    torch, or to OMP_NUM_THREADS while torch is not imported yet. The file is read once the handler is in place, so a
    count written before then (its signal ignored) is read here."""
    if THREADS_ENV not in os.environ or THREADS_SIGNAL is None:
        return
    path = Path(os.environ[THREADS_ENV])

    def apply(*_) -> None:
        try:
            n = int(path.read_text())
        except (OSError, ValueError):
            return
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(n)
        torch = sys.modules.get("torch")
        try:
            torch.set_num_threads(n)
        except (AttributeError, RuntimeError):  # not imported, or still importing: the variables above do it
            pass

    signal.signal(THREADS_SIGNAL, apply)
    apply()


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
    threads_file = Path(env[THREADS_ENV]) if THREADS_ENV in env else None
    return Child(stage, process, log, slot, time.perf_counter(), int(env.get("OMP_NUM_THREADS", 0)) or None,
                 threads_file)


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
