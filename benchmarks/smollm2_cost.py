"""Benchmark: what smollm2-135m costs on this machine — training, generation and PPO — in one run.

    python benchmarks/smollm2_cost.py                          # CPU, float32 (the defaults)
    python benchmarks/smollm2_cost.py --device cuda --dtype bfloat16 --steps 10

Rows, each measured in its own child process (so every peak RSS is that measurement's alone):
1. SFT tokens/s: forward + backward + AdamW step on batches of --batch_size sequences of --seq_len tokens, full
   fine-tuning (the baseline) against LoRA (r=8 on q/k/v/o projections, as `heal sft --use_peft` trains them).
2. Generation tokens/s: greedy answers to --prompts short health questions (chat template), up to --new_tokens
   each, one prompt at a time (the baseline) against batched, left-padded (heal.models.generate.HFBackend).
3. Seconds per PPO update with LoRA: `heal ppo` on smollm2-135m with the rule reward, --ppo_batch rollouts of
   --new_tokens tokens; rollout and update times are the run's own `time/*` metrics (second update: the first warms
   up caches).
Peak RSS is the child's maximum resident set (ru_maxrss), model load included. The ratio column compares each row
with its baseline from the same run. Load times are excluded from the rates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
QUESTIONS = ["What is the maximum daily dose of acetaminophen for adults?", "Is aspirin an NSAID?",
             "How long should I take antibiotics for strep throat?", "Can dehydration cause headaches?",
             "What are the warning signs of a stroke?", "Is it safe to take ibuprofen with warfarin?",
             "How much water should an adult drink a day?", "What does a high LDL cholesterol mean?"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load(args):
    import torch

    from heal.models.loading import load_policy

    model, tokenizer, _ = load_policy("smollm2-135m", dtype=getattr(torch, args.dtype))
    return model.to(args.device), tokenizer


def sft_rate(args, lora: bool) -> dict:
    import torch

    model, _ = load(args)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                                        "o_proj"]))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch = torch.randint(100, 40000, (args.batch_size, args.seq_len), device=args.device)

    def step():
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()  # warm-up: allocations, optimizer state
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = time.perf_counter() - start
    return {"value": args.steps * args.batch_size * args.seq_len / seconds, "unit": "tokens/s"}


def generation_rate(args, batch_size: int) -> dict:
    from heal.models.generate import HFBackend

    model, tokenizer = load(args)
    backend = HFBackend(model, tokenizer, batch_size=batch_size, progress=False)
    texts = [backend.render(q) for q in (QUESTIONS * 4)[:args.prompts]]
    backend.generate(texts[:1], max_new_tokens=2)  # warm-up
    start = time.perf_counter()
    outs = backend.generate(texts, max_new_tokens=args.new_tokens)
    seconds = time.perf_counter() - start
    return {"value": sum(o.completion_tokens for o in outs) / seconds, "unit": "generated tokens/s"}


def ppo_update(args) -> dict:
    from heal.cli import run
    from heal.data import io
    from heal.models import run_folder

    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        io.write_records(prompts, [{"prompt": q, "label": "yes"} for q in QUESTIONS])
        out = Path(tmp) / "ppo"
        code = run(["ppo", "--model_name", "smollm2-135m", "--reward", "rule:pubmedqa", "--dataset_path",
                    str(prompts), "--eval_split_size", "0", "--output_dir", str(out), "--response_length",
                    str(args.new_tokens), "--max_steps", "2", "--per_device_train_batch_size", str(args.ppo_batch),
                    "--use_peft", "--lora_r", "8", "--lora_alpha", "16", "--disable_tqdm", "true",
                    *(["--bf16", "true"] if args.dtype == "bfloat16" else [])])
        if code != 0:
            raise SystemExit(f"heal ppo failed (exit {code})")
        rows = [r for r in run_folder.read_metrics(out) if "time/update_seconds" in r]
    last = rows[-1]
    return {"value": last["time/rollout_seconds"] + last["time/update_seconds"], "unit": "s per update",
            "note": f"rollout {last['time/rollout_seconds']:.1f} s + optimisation {last['time/update_seconds']:.1f} s, "
                    f"{args.ppo_batch} rollouts × {args.new_tokens} tokens"}


PHASES = {
    "sft_full": ("SFT, full fine-tuning", lambda a: sft_rate(a, lora=False)),
    "sft_lora": ("SFT, LoRA r=8", lambda a: sft_rate(a, lora=True)),
    "gen_single": ("generation, one prompt at a time", lambda a: generation_rate(a, 1)),
    "gen_batched": ("generation, batched", lambda a: generation_rate(a, a.prompts)),
    "ppo_lora": ("PPO update, LoRA policy", ppo_update),
}
BASELINES = {"sft_lora": "sft_full", "gen_batched": "gen_single"}


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = PHASES[args.phase][1](args)
    print(json.dumps({**result, "peak_rss_mb": peak_rss_mb()}))


def parent(args) -> None:
    rows = {}
    for phase in PHASES:
        argv = [sys.executable, __file__, "--phase", phase, *sys.argv[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if done.returncode != 0:
            raise SystemExit(f"{phase} failed:\n{done.stderr[-2000:]}")
        rows[phase] = json.loads(done.stdout.strip().splitlines()[-1])
    print_table(args, rows)


def print_table(args, rows: dict) -> None:
    print(f"smollm2-135m on {args.device} ({args.dtype}), {args.threads} threads, {platform.processor() or 'cpu'}, "
          f"load average at the end {os.getloadavg()[0]:.1f}")
    print(f"| measurement | value | unit | vs baseline | peak RSS (MB) |\n|---|---:|---|---:|---:|")
    for phase, (label, _) in PHASES.items():
        row = rows[phase]
        base = BASELINES.get(phase)
        ratio = f"{row['value'] / rows[base]['value']:.2f}×" if base else "baseline" if phase in BASELINES.values() \
            else ""
        note = f" ({row['note']})" if row.get("note") else ""
        print(f"| {label}{note} | {row['value']:.1f} | {row['unit']} | {ratio} | {row['peak_rss_mb']:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the CI machine's cores)")
    parser.add_argument("--steps", type=int, default=3, help="timed SFT optimizer steps")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new_tokens", type=int, default=32)
    parser.add_argument("--ppo_batch", type=int, default=8)
    parser.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.phase else parent(args)


if __name__ == "__main__":
    main()
