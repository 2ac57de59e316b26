"""Benchmark: heal-tiny SFT throughput and memory, with and without packing, and an MFU estimate, in one run.

    python benchmarks/sft_throughput.py                       # default heal-tiny, 60 steps per configuration
    python benchmarks/sft_throughput.py --max_steps 30 --tiny_hidden_size 64 --tiny_layers 2   # quicker

It writes synthetic PubMedQA records (heal.data.synthetic → `heal prep`), then runs `heal sft` once per configuration,
each in a fresh process so its peak resident memory is its own:
- padded: batches of 8 examples padded to the longest (TRL's default collation);
- packed: `--packing` (best-fit decreasing, padding-free), 4 rows of `--max_length` 512 tokens per step, which holds
  about as many examples per step as the padded run (longer blocks cost more attention: packed sequences get a
  block-diagonal mask, so the causal fast path of SDPA is not used).
Evaluation, checkpoints and progress bars are off, so the clock measures training. Tokens are real (non-padding)
tokens, counted by the trainer on every rank (heal_run.json). In the same run it measures the matrix-multiply FLOP/s
this machine reaches with torch (fp32, the training precision on CPU), and reports
MFU = 6 · parameters · tokens/s ÷ that FLOP/s (the usual 6N FLOPs per token for forward + backward; attention's
own FLOPs are left out, so this slightly understates the work done).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {
    "padded": ["--per_device_train_batch_size", "8"],
    "packed": ["--packing", "--max_length", "512", "--per_device_train_batch_size", "4"],
}


def matmul_flops(size: int = 1024, seconds: float = 2.0) -> float:
    """Best sustained fp32 matmul FLOP/s of torch on this machine (its default thread count)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b  # warm-up
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * size**3 / (time.perf_counter() - start))
    return best


def prepare_data(work: Path, n: int) -> Path:
    from heal.cli import run

    work.mkdir(parents=True, exist_ok=True)
    raw, records = work / "pqal.json", work / "pubmedqa.csv"
    if not records.exists():
        assert run(["prep", "--dataset", "synthetic_pubmedqa", "--n", str(n), "--output_path", str(raw)]) == 0
        assert run(["prep", "--dataset", "pubmedqa", "--input_path", str(raw), "--output_path", str(records)]) == 0
    return records


def run_child(argv: list[str]) -> None:
    """In the child: run `heal sft argv`, then print this process's peak RSS (MB) as the last line."""
    from heal.cli import run

    code = run(argv)
    print(json.dumps({"code": code, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(name: str, records: Path, work: Path, args) -> dict:
    out = work / f"run_{name}"
    argv = ["sft", "--dataset", "pubmedqa", "--dataset_path", str(records), "--model_name", "heal-tiny",
            "--output_dir", str(out), "--overwrite_output_dir", "--eval_split_size", "0", "--save_strategy", "no",
            "--disable_tqdm", "true", "--logging_steps", str(args.max_steps), "--max_steps", str(args.max_steps),
            "--tiny_hidden_size", str(args.tiny_hidden_size), "--tiny_layers", str(args.tiny_layers),
            "--tiny_heads", str(args.tiny_heads), *CONFIGS[name]]
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(argv)], capture_output=True, text=True)
    last = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {"code": done.returncode}
    if last.get("code") != 0:
        raise SystemExit(f"{name}: heal sft failed:\n{done.stderr[-3000:]}")
    from heal.models import run_folder

    result = run_folder.read_run(out)
    rank = result["distributed"]["ranks"][0]
    seconds = result["metrics"]["train/wall_seconds"]
    params = _parameters(out)
    return {"config": name, "steps": result["metrics"]["train/global_step"], "seconds": seconds,
            "tokens_per_s": rank["tokens"] / seconds, "sequences_per_s": rank["sequences"] / seconds,
            "padding": 1 - rank["tokens"] / rank["positions"], "peak_rss_mb": last["peak_rss_mb"],
            "params": params, "final_loss": result["metrics"].get("train/last_loss")}


def _parameters(folder: Path) -> int:
    from transformers import AutoModelForCausalLM

    return sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(folder).parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work_dir", default="benchmarks/_work/sft_throughput")
    parser.add_argument("--n", type=int, default=600, help="synthetic PubMedQA items")
    parser.add_argument("--max_steps", type=int, default=60)
    parser.add_argument("--tiny_hidden_size", type=int, default=128)
    parser.add_argument("--tiny_layers", type=int, default=4)
    parser.add_argument("--tiny_heads", type=int, default=4)
    args = parser.parse_args()
    if args.child:
        run_child(json.loads(args.child))
        return
    import torch

    work = Path(args.work_dir)
    records = prepare_data(work, args.n)
    flops = matmul_flops()
    rows = [measure(name, records, work, args) for name in CONFIGS]
    print(f"\nheal-tiny SFT on {args.n} synthetic PubMedQA records, {args.max_steps} steps per configuration; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; fp32 matmul peak {flops / 1e9:.1f} GFLOP/s; "
          f"{rows[0]['params'] / 1e6:.2f} M parameters\n")
    print("| config | steps | s | tokens/s | sequences/s | padding | peak RSS (MB) | MFU | final loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mfu = 6 * r["params"] * r["tokens_per_s"] / flops
        print(f"| {r['config']} | {r['steps']} | {r['seconds']:.1f} | {r['tokens_per_s']:,.0f} | "
              f"{r['sequences_per_s']:.1f} | {r['padding']:.0%} | {r['peak_rss_mb']:.0f} | {mfu:.1%} | "
              f"{r['final_loss']:.3f} |")


if __name__ == "__main__":
    main()
