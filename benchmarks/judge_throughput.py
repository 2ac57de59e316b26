"""Benchmark: AI-judge throughput — cold vs warm cache, sequential vs concurrent HTTP — in one run.

    python benchmarks/judge_throughput.py                 # 48 pairs
    python benchmarks/judge_throughput.py --pairs 96 --latency_ms 200

A heal-tiny model is built locally and served by `heal serve`'s app on 127.0.0.1; the OpenAI-compatible judge
(heal.feedback.openai_judge) judges the same pairs (both orders) several ways. The served model handles one request
at a time, as a single local model does; `--latency_ms` adds a fixed delay per request on the server to stand in
for a remote API's network and queueing time, which is where concurrent requests pay off. The local `hf:` judge is
measured too. Each row's pairs/s is compared with the sequential cold-cache run of the same judge setting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path


def build_model(folder: Path) -> None:
    from heal.models.tiny import TinyConfig, build_heal_tiny

    corpus = [f"Is treatment {i} better than placebo for condition {i % 7}? Answer A or B." for i in range(400)]
    model, tokenizer = build_heal_tiny(corpus, TinyConfig(tiny_hidden_size=64, tiny_layers=2, tiny_heads=2))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def start_server(model_dir: Path, latency_ms: float) -> tuple[str, object]:
    import uvicorn

    from heal.models.generate import load_backend
    from heal.serve.app import create_app

    app = create_app(load_backend(str(model_dir), batch_size=1, backend="hf", progress=False), "tiny-judge",
                     max_new_tokens=4)
    if latency_ms:
        @app.middleware("http")
        async def delay(request, call_next):  # stands in for a remote API's network time (does not hold the model)
            await asyncio.sleep(latency_ms / 1000)
            return await call_next(request)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}/v1", server


def items(n: int):
    from heal.feedback.judges import JudgeItem

    return [JudgeItem(f"Does drug {i} lower blood pressure in adults with hypertension?",
                      f"Yes. Trial {i} showed a 10 mmHg drop.", f"No. Trial {i} found no change.") for i in range(n)]


def timed(judge, pairs) -> float:
    start = time.perf_counter()
    judge.compare(pairs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency_ms", type=float, default=100.0)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")
    from heal.feedback.cache import JudgmentCache
    from heal.feedback.judges import make_judge

    work = Path(tempfile.mkdtemp(prefix="heal-judge-bench-"))
    build_model(work / "model")
    pairs = items(args.pairs)
    rows = []
    for latency in (0.0, args.latency_ms):
        url, server = start_server(work / "model", latency)
        where = "local server" if not latency else f"server + {latency:.0f} ms latency"
        warm_up = make_judge("openai:tiny-judge", base_url=url, cache=None)
        warm_up.compare(items(2))  # first requests pay for start-up (threads, allocator): keep them out of the timing
        for name, concurrency in (("sequential", 1), (f"concurrent ({args.concurrency})", args.concurrency)):
            cache = JudgmentCache(work / f"cache-{latency}-{concurrency}.sqlite")
            judge = make_judge("openai:tiny-judge", base_url=url, cache=cache, concurrency=concurrency)
            rows.append((f"openai judge, {where}", name, "cold", timed(judge, pairs), judge.calls))
            warm = make_judge("openai:tiny-judge", base_url=url, cache=cache, concurrency=concurrency)
            rows.append((f"openai judge, {where}", name, "warm", timed(warm, pairs), warm.calls))
        server.should_exit = True
    make_judge(f"hf:{work / 'model'}", cache=None).compare(items(2))  # warm-up
    cache = JudgmentCache(work / "cache-hf.sqlite")
    hf = make_judge(f"hf:{work / 'model'}", cache=cache, batch_size=16)
    rows.append(("hf judge (in process)", "batched (16)", "cold", timed(hf, pairs), hf.calls))
    hf_warm = make_judge(f"hf:{work / 'model'}", cache=cache, batch_size=16)
    rows.append(("hf judge (in process)", "batched (16)", "warm", timed(hf_warm, pairs), hf_warm.calls))

    base = {}  # each judge setting against its own sequential (or only) cold run
    for judge, _, _, seconds, _ in rows:
        base.setdefault(judge, args.pairs / seconds)
    print(f"\nJudge throughput: {args.pairs} pairs, both orders judged ({2 * args.pairs} single-order calls when "
          f"cold); {os.cpu_count()} CPUs\n")
    print("| judge | requests | cache | pairs/s | vs sequential cold | judge calls made |")
    print("|---|---|---|---|---|---|")
    for judge, mode, cache_state, seconds, calls in rows:
        rate = args.pairs / seconds
        print(f"| {judge} | {mode} | {cache_state} | {rate:,.1f} | {rate / base[judge]:.1f}x | {calls} |")


if __name__ == "__main__":
    sys.exit(main())
