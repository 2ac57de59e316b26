"""PPO throughput on heal-tiny: HEAL's PPO against TRL 1.12's PPOTrainer (or a naive baseline), measured in one run.

    python benchmarks/ppo_throughput.py                                  # HEAL vs a naive baseline (~2 min, 2 CPUs)
    python -m venv /tmp/trl112 && /tmp/trl112/bin/pip install "trl==1.12.*"   # a throwaway venv outside the repo
    python benchmarks/ppo_throughput.py --trl_python /tmp/trl112/bin/python   # HEAL vs TRL 1.12 vs naive

Workload (identical for every contender): heal-tiny after a short SFT on synthetic PubMedQA, a reward model trained
from it, `--batch` rollouts per PPO update (one process), `--response_length` tokens per response at temperature
0.7, 4 PPO epochs × 1 minibatch, policy + value + reference + reward model in fp32 on the CPU, dropout off,
gradient checkpointing off. Each contender runs in its own process, so peak RSS (resident memory, including model
loading) is its own. The first update is a warm-up and is not timed.

Contenders:
- HEAL: `heal.ppo` (batched, KV-cached generation via `generate`; one no-grad pass each for policy+value, reference
  and reward per chunk of `local_rollout_forward_batch_size` rollouts).
- TRL 1.12: `trl.experimental.ppo.PPOTrainer`, the last TRL with a PPO trainer (TRL removed it in 1.13), run from
  another Python (its own venv; it must not share HEAL's, which pins TRL 1.16) with the same models and knobs.
- naive: HEAL's loop with the rollout done the simple way — one prompt at a time, no KV cache (every new token
  re-reads the whole sequence). Always measured, so the table has a baseline even without TRL 1.12.

Prints a Markdown table; ratios are against HEAL, measured in the same run. Nothing here is asserted by a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work" / "ppo_throughput"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}


def heal(*argv: str) -> None:
    done = subprocess.run([sys.executable, "-m", "heal.cli", *argv], env=ENV, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"heal {argv[0]} failed:\n{done.stderr[-3000:]}")


def prepare(args) -> dict:
    """Data, SFT policy and reward model, built once and kept in benchmarks/_work/ppo_throughput."""
    WORK.mkdir(parents=True, exist_ok=True)
    paths = {"raw": WORK / "pqal.json", "data": WORK / "pubmedqa.csv", "sft": WORK / "sft", "rm": WORK / "rm"}
    if not paths["data"].exists():
        heal("prep", "--dataset", "synthetic_pubmedqa", "--n", "400", "--output_path", str(paths["raw"]))
        heal("prep", "--dataset", "pubmedqa", "--input_path", str(paths["raw"]), "--output_path", str(paths["data"]))
    if not (paths["sft"] / "model.safetensors").exists():
        heal("sft", "--dataset_path", str(paths["data"]), "--model_name", "heal-tiny", "--output_dir",
             str(paths["sft"]), "--max_steps", "60", "--per_device_train_batch_size", "16", "--eval_split_size", "0",
             "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--overwrite_output_dir")
    if not (paths["rm"] / "model.safetensors").exists():
        heal("reward", "--dataset_path", str(paths["data"]), "--model_name", str(paths["sft"]), "--output_dir",
             str(paths["rm"]), "--max_steps", "20", "--per_device_train_batch_size", "16", "--eval_split_size", "0",
             "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--overwrite_output_dir")
    return {k: str(v) for k, v in paths.items()}


# --- contenders (each runs in its own process: `--worker heal|naive|trl`) -----------------------------------------

def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def heal_worker(args, paths: dict, naive: bool) -> dict:
    import time

    import torch

    from heal.ppo import rollout, setup
    from heal.ppo.data import load_prompts
    from heal.ppo.train import make_parser, ppo_update

    torch.manual_seed(0)
    script, training, model_args = make_parser().parse([
        "--model_name", paths["sft"], "--reward_model_path", paths["rm"], "--dataset_path", paths["data"],
        "--response_length", str(args.response_length), "--per_device_train_batch_size", str(args.batch),
        "--local_rollout_forward_batch_size", str(args.batch), "--max_steps", str(args.updates + 1),
        "--temperature", "0.7", "--output_dir", str(WORK / "unused"), "--learning_rate", "3e-4"])
    prompts = load_prompts(paths["data"])
    sizes = setup.batch_sizes(training, 1, len(prompts))
    run = setup.build_run(script, training, model_args, prompts, sizes, credentialed=False, trackers=[])
    if naive:
        rollout.generate = naive_generate  # one prompt at a time, no KV cache
        run.settings.forward_batch_size = 1
    times, rollout_times = [], []
    for update in range(args.updates + 1):
        started = time.perf_counter()
        metrics, _ = ppo_update(run)
        run.step += 1
        if update:  # the first update is a warm-up
            times.append(time.perf_counter() - started)
            rollout_times.append(metrics["time/rollout_seconds"])
    return {"seconds_per_update": sum(times) / len(times), "rollouts": args.batch * args.updates,
            "seconds": sum(times), "rollout_seconds": sum(rollout_times) / len(times), "peak_rss_mb": peak_rss_mb(),
            "versions": _versions()}


def naive_generate(policy, query, query_mask, response_length, temperature, stop_ids, pad_id):
    """Sampling one row at a time, re-reading the whole sequence for every token (no batching, no KV cache)."""
    import torch

    rows = []
    for ids, mask in zip(query, query_mask):
        sequence = ids[mask.bool()].unsqueeze(0)
        new = []
        for _ in range(response_length):
            with torch.no_grad():
                logits = policy(input_ids=sequence, use_cache=False).logits[0, -1].float() / temperature
            token = torch.multinomial(torch.softmax(logits, -1), 1)
            new.append(int(token))
            sequence = torch.cat([sequence, token.view(1, 1)], dim=1)
            if new[-1] in stop_ids:
                break
        rows.append(new + [pad_id] * (response_length - len(new)))
    return torch.tensor(rows, device=query.device)


def trl_worker(args, paths: dict) -> dict:
    """TRL 1.12's PPOTrainer on the same models, data and knobs (runs in TRL 1.12's own Python)."""
    import time

    import torch
    from datasets import Dataset
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer,
                              TrainerCallback)
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    sys.path.insert(0, str(REPO / "src"))
    from heal.models.prompting import format_prompt  # plain Python: no TRL 1.16 needed

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(paths["sft"])
    tokenizer.padding_side = "left"
    import csv

    with open(paths["data"], encoding="utf-8") as f:
        prompts = [row["prompt"] for row in csv.DictReader(f)]
    ids = [tokenizer(format_prompt(tokenizer, p))["input_ids"] for p in prompts]
    dataset = Dataset.from_dict({"input_ids": ids})
    config = PPOConfig(output_dir=str(WORK / "trl_unused"), per_device_train_batch_size=args.batch,
                       gradient_accumulation_steps=1, num_ppo_epochs=4, num_mini_batches=1,
                       local_rollout_forward_batch_size=args.batch, response_length=args.response_length,
                       temperature=0.7, total_episodes=args.batch * (args.updates + 1), learning_rate=3e-4,
                       stop_token="eos", kl_coef=0.05, bf16=False, gradient_checkpointing=False, use_cpu=True,
                       num_sample_generations=0, report_to="none", save_strategy="no", logging_steps=1000,
                       disable_tqdm=True, seed=0)
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

    trainer = PPOTrainer(args=config, processing_class=tokenizer,
                         model=AutoModelForCausalLM.from_pretrained(paths["sft"]),
                         ref_model=AutoModelForCausalLM.from_pretrained(paths["sft"]),
                         reward_model=AutoModelForSequenceClassification.from_pretrained(paths["rm"]),
                         value_model=AutoModelForSequenceClassification.from_pretrained(paths["rm"]),
                         train_dataset=dataset, eval_dataset=dataset.select(range(8)), callbacks=[Clock()])
    trainer.train()
    times = [b - a for a, b in zip(stamps, stamps[1:])]  # update 1 (warm-up) ends at stamps[0]
    return {"seconds_per_update": sum(times) / len(times), "rollouts": args.batch * len(times),
            "seconds": sum(times), "rollout_seconds": None, "peak_rss_mb": peak_rss_mb(), "versions": _versions()}


def _versions() -> str:
    import torch
    import transformers
    import trl

    return f"trl {trl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}"


# --- the table -----------------------------------------------------------------------------------------------------

def run_worker(python: str, mode: str, args, paths: dict) -> dict:
    command = [python, __file__, "--worker", mode, "--paths", json.dumps(paths), "--batch", str(args.batch),
               "--response_length", str(args.response_length), "--updates", str(args.updates)]
    env = {**ENV, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{mode} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict[str, dict], args) -> str:
    base = results["HEAL"]
    lines = [f"PPO on heal-tiny, {args.batch} rollouts/update, {args.response_length}-token responses, "
             f"{args.updates} timed updates, {args.threads} thread(s) per process", "",
             "| contender | s / update | of which rollout (steps 1–7) | rollouts / s | peak RSS (MB) | time vs HEAL | "
             "versions |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        ratio = r["seconds_per_update"] / base["seconds_per_update"]
        rollout = f"{r['rollout_seconds']:.2f}" if r["rollout_seconds"] is not None else "n/a"
        lines.append(f"| {name} | {r['seconds_per_update']:.2f} | {rollout} | {r['rollouts'] / r['seconds']:.1f} | "
                     f"{r['peak_rss_mb']:.0f} | {ratio:.2f}× | {r['versions']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trl_python", default=os.environ.get("HEAL_TRL112_PYTHON"),
                        help="Python of a venv with trl==1.12.* (default: $HEAL_TRL112_PYTHON; unset: no TRL column)")
    parser.add_argument("--batch", type=int, default=16, help="rollouts per PPO update")
    parser.add_argument("--response_length", type=int, default=32)
    parser.add_argument("--updates", type=int, default=4, help="timed updates (after one warm-up update)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    parser.add_argument("--worker", choices=["heal", "naive", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        paths = json.loads(args.paths)
        result = trl_worker(args, paths) if args.worker == "trl" else heal_worker(args, paths, args.worker == "naive")
        print(json.dumps(result))
        return
    paths = prepare(args)
    results = {"HEAL": run_worker(sys.executable, "heal", args, paths)}
    if args.trl_python:
        results["TRL 1.12 PPOTrainer"] = run_worker(args.trl_python, "trl", args, paths)
    results["naive (unbatched, no KV cache)"] = run_worker(sys.executable, "naive", args, paths)
    print(table(results, args))


if __name__ == "__main__":
    main()
