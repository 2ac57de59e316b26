"""Benchmark: `heal annotate serve` under concurrent annotators on loopback — throughput, latency, and no lost or
duplicated label.

    python benchmarks/annotate_load.py                         # 20 annotators × 50 labels, 2 labels per pair
    python benchmarks/annotate_load.py --annotators 40 --labels 25

The real server runs as its own process (`python -m heal.cli annotate serve`, uvicorn, SQLite in WAL mode with
synchronous=FULL: every label is on disk before it is acknowledged). Each simulated annotator signs in with their
own token and loops GET /api/next → POST /api/labels, as the page does. The same work done by one annotator alone is
the baseline of the same run (the speed-up column). Afterwards the database is compared with what the server
acknowledged: lost = acknowledged but absent, duplicated = a pair labelled twice by one annotator or by more
annotators than --labels_per_pair. Client and server share this machine's cores, so the numbers are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHOICES = ("A", "B", "tie", "both_unsafe")


def write_pairs(path: Path, n: int) -> None:
    rows = [{"id": f"p{i}", "prompt": f"Patient {i}: fever for {i % 9 + 1} days, what now? " + "Context. " * 40,
             "chosen": f"See a clinician if the fever lasts beyond 3 days (case {i}).",
             "rejected": f"Nothing to worry about (case {i})."} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, pairs: Path, labels_per_pair: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "heal.cli", "annotate", "serve", "--db_path", str(db),
                               "--pairs_path", str(pairs), "--port", str(port), "--labels_per_pair",
                               str(labels_per_pair)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        if server.poll() is not None:
            raise SystemExit(f"server exited: {server.stderr.read()}")
        try:
            httpx.get(url + "/openapi.json", timeout=1)
            return server, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


async def annotator(url: str, token: str, labels: int, stats: dict, seed: int) -> None:
    """Label `labels` pairs as one person would through the API (retrying a request whose answer was lost)."""
    import httpx

    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        for i in range(labels):
            pair = (await request(client, "GET", "/api/next", None, stats, "next"))["pair"]
            if pair is None:
                return
            body = {"pair_id": pair["pair_id"], "choice": CHOICES[(seed + i) % 4], "flags": [], "rationale": ""}
            await request(client, "POST", "/api/labels", body, stats, "label")
            stats["acknowledged"].append((token, pair["pair_id"]))


async def request(client, method: str, path: str, body, stats: dict, kind: str) -> dict:
    import httpx

    for _ in range(5):
        start = time.perf_counter()
        try:
            response = await client.request(method, path, json=body)
        except httpx.TransportError:
            stats["retries"] += 1
            continue
        stats[kind].append(time.perf_counter() - start)
        if response.status_code >= 500:
            stats["server_errors"] += 1
            continue
        response.raise_for_status()
        return response.json()
    raise RuntimeError(f"{method} {path} failed 5 times")


def run(n_annotators: int, labels: int, labels_per_pair: int, folder: Path) -> dict:
    """One load run on a fresh database; returns the measurements and the integrity check."""
    from heal.annotate.store import Store

    db, pairs = folder / "labels.sqlite", folder / "pairs.jsonl"
    write_pairs(pairs, n_annotators * labels // labels_per_pair + 50)
    store = Store(db)
    tokens = [store.add_annotator(f"a{i:02d}") for i in range(n_annotators)]
    server, url = start_server(db, pairs, labels_per_pair)
    stats = {"next": [], "label": [], "acknowledged": [], "retries": 0, "server_errors": 0}
    try:
        async def everyone():
            await asyncio.gather(*(annotator(url, t, labels, stats, i) for i, t in enumerate(tokens)))

        start = time.perf_counter()
        asyncio.run(everyone())
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = {store.annotator_for(t).id: t for t in tokens}
    stored = [(names[r[0]], r[1]) for r in store.read("SELECT annotator_id, pair_id FROM labels")]
    over = store.count("SELECT COUNT(*) FROM (SELECT pair_id FROM labels GROUP BY pair_id HAVING COUNT(*) > ?)",
                       (labels_per_pair,))
    return {"annotators": n_annotators, "labels": len(stats["acknowledged"]), "seconds": seconds,
            "next": stats["next"], "label": stats["label"], "server_errors": stats["server_errors"],
            "retries": stats["retries"], "lost": len(set(stats["acknowledged"]) - set(stored)),
            # one annotator given the same pair twice, or twice in the table, or a pair over its quota of labels
            "duplicated": (len(stats["acknowledged"]) - len(set(stats["acknowledged"])))
                          + (len(stored) - len(set(stored))) + over}


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--annotators", type=int, default=20)
    parser.add_argument("--labels", type=int, default=50, help="labels per annotator")
    parser.add_argument("--labels_per_pair", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, args.annotators):  # the baseline: the same labels per annotator, one annotator
            folder = Path(tmp) / f"run{n}"
            folder.mkdir()
            rows.append(run(n, args.labels, args.labels_per_pair, folder))
    base = rows[0]["labels"] / rows[0]["seconds"]
    print(f"\nheal annotate serve on loopback, {args.labels} labels per annotator, {args.labels_per_pair} labels per "
          "pair; latency in ms per request (client and server share the machine)\n")
    header = ("| annotators | labels | seconds | labels/s | speed-up | next p50 | next p95 | next p99 | label p50 | "
              "label p95 | label p99 | lost | duplicated | server errors | retries |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for r in rows:
        rate = r["labels"] / r["seconds"]
        print(f"| {r['annotators']} | {r['labels']} | {r['seconds']:.1f} | {rate:.1f} | {rate / base:.2f}× | "
              f"{percentile(r['next'], 50):.1f} | {percentile(r['next'], 95):.1f} | {percentile(r['next'], 99):.1f} | "
              f"{percentile(r['label'], 50):.1f} | {percentile(r['label'], 95):.1f} | "
              f"{percentile(r['label'], 99):.1f} | {r['lost']} | {r['duplicated']} | {r['server_errors']} | "
              f"{r['retries']} |")
    bad = any(r["lost"] or r["duplicated"] or r["server_errors"] for r in rows)
    expected = args.annotators * args.labels
    if bad or rows[-1]["labels"] != expected:
        raise SystemExit(f"FAILED: expected {expected} acknowledged labels, 0 lost, 0 duplicated, 0 server errors")


if __name__ == "__main__":
    main()
