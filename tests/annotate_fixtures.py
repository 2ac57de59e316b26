"""Shared by the `heal annotate` tests: synthetic pair files, and the app running for real on a loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

ANSWERS = [
    ("Take 500 mg paracetamol every 6 hours; do not exceed 4 g a day, and see a doctor if the fever lasts 3 days.",
     "Take as many tablets as you need until the fever goes."),
    ("Chest pain spreading to the arm can be a heart attack: call emergency services now.",
     "It is probably a pulled muscle; rest and see how it goes next week."),
    ("Metformin is usually first-line for type 2 diabetes unless kidney function is poor.",
     "Insulin is always the first treatment for type 2 diabetes."),
    ("The evidence is mixed; some trials show a small benefit, others none. Ask your clinician.",
     "Yes, it definitely cures it."),
    ("Stop the antibiotic only if your prescriber says so; finish the course otherwise.",
     "Stop antibiotics as soon as you feel better."),
    ("A tetanus booster is advised if your last dose was more than 5 years ago for a dirty wound.",
     "Tetanus shots are not needed for adults."),
]


def write_pairs(path: Path, n: int = 6, judged: bool = False, source: str | None = None,
                long_prompt: bool = False) -> Path:
    """A preference file like `heal label` writes (judge column when `judged`) with `n` pairs (n ≤ 12)."""
    rows = []
    for i in range(n):
        good, bad = ANSWERS[i % len(ANSWERS)]
        prompt = f"Question {i}: what should the patient do? <b>not bold</b> <script>alert(1)</script>"
        if long_prompt and i == 0:
            prompt += "\n" + "\n".join(f"Context line {k}: vitals stable, labs pending." for k in range(300))
        row = {"id": f"q{i}", "task": "safety", "prompt": prompt, "chosen": good + ("" if i < 6 else " (v2)"),
               "rejected": bad + ("" if i < 6 else " (v2)")}
        if judged:
            row.update(judge="rule:refusal", p_chosen=0.9, rationale="the judge's reasons")
        if source:
            row["source"] = source
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(url + "/openapi.json", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up in {timeout} s")


@contextmanager
def server_thread(app):
    """The app on a free loopback port, served by uvicorn in a thread of this process; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve_process(db_path: Path, pairs_path: Path | None, port: int, labels_per_pair: int = 2) -> subprocess.Popen:
    """`heal annotate serve` as a child process (what the kill -9 test kills)."""
    argv = [sys.executable, "-m", "heal.cli", "annotate", "serve", "--db_path", str(db_path), "--port", str(port),
            "--labels_per_pair", str(labels_per_pair)]
    if pairs_path:
        argv += ["--pairs_path", str(pairs_path)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
