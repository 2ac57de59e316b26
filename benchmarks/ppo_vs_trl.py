"""HEAL's PPO against TRL 1.12's PPOTrainer, in one run: episodes/s, peak RSS, reward before/after and KL.

    python benchmarks/ppo_vs_trl.py                          # builds TRL 1.12.0's venv under benchmarks/_work (once)
    python benchmarks/ppo_vs_trl.py --trl_python /path/to/venv/bin/python       # a venv with trl==1.12.0 already
    python benchmarks/ppo_vs_trl.py --updates 40 --repeats 5                    # longer; median of 5 interleaved runs
    python benchmarks/ppo_vs_trl.py --heal_variant='--share_backbone true'     # also HEAL with a shared trunk
    python benchmarks/ppo_vs_trl.py --heal_variant='--torch_compile true'      # also HEAL with torch.compile
    python benchmarks/ppo_vs_trl.py --model smollm2-135m --lora --batch 8 --response_length 24 --updates 2 \
        --eval_prompts 24 --eval_samples 1                                       # the real model, LoRA (see below)

TRL removed its PPOTrainer in 1.13, so the contender is `trl.experimental.ppo.PPOTrainer` of trl==1.12.0, the last
release with it. It cannot share HEAL's venv (HEAL pins TRL 1.16), so without --trl_python this script makes a
throwaway venv at benchmarks/_work/trl-1.12.0-venv (git-ignored): torch first, at the version HEAL runs (so pip keeps
the CPU build instead of downloading CUDA wheels; set PIP_EXTRA_INDEX_URL to a CPU wheel index where your pip needs
it), then trl==1.12.0 with HEAL's versions of transformers, accelerate, datasets and peft — the same kernels for both.

Workload, identical for both contenders: heal-tiny after SFT on synthetic PubMedQA (`heal sft`), a reward model
trained from it (`heal reward`); policy, reference and value model (from the reward model) and reward model in fp32 on
the CPU, one process, `--threads` torch threads. The same training prompts (held-out prompts kept apart), and the
same knobs (KNOBS below: TRL 1.12 PPOConfig names): `--batch` rollouts per update, `--response_length` tokens at
temperature 0.7, stop at EOS, missing-EOS penalty 1, k1 KL with β = 0.05, 4 PPO epochs × 1 minibatch, lr 3e-4 with
linear decay, no gradient clipping (TRL 1.12's loop does not clip; HEAL runs with --max_grad_norm 0 to match).
Both see the same reward: TRL's reward model gets a head that applies HEAL's normalisation ((r − mean)/std from the
reward model's config.json), which HEAL's PPO applies itself.

Measured: each contender runs in its own process (peak RSS is its own, model loading included); update 1 is a
warm-up; a run's s/update is the median of its timed updates, and a contender's the median over `--repeats` runs
(3 by default), the contenders' runs interleaved so that load from other jobs on a shared machine falls on both;
episodes/s = rollouts per update / that. Afterwards one evaluator (HEAL's venv, the same code for all) samples `--eval_samples`
answers per held-out prompt at temperature 0.7 from the SFT policy and from each trained policy and reports the
reward model's mean (normalised) score, PubMedQA accuracy, and KL(π ‖ π_SFT) = mean over answers of
Σ_t log π(a_t) − log π_SFT(a_t). Prints a Markdown table with the ratios HEAL / TRL.

The real model (`--model smollm2-135m --lora`): the policy is SmolLM2-135M-Instruct itself (HEAL's offline copy,
heal.models.packaged; no SFT), the reward model SmolLM2-135M-Instruct trained by `heal reward` with LoRA (merged) for
`--rm_steps` steps on the same pairs, and the value model starts from it. LoRA (r 16, α 32, q/k/v/o projections —
as both set them here) on the policy and on the value model (its head trained fully) for both contenders: TRL 1.12 takes
the policy's as `peft_config` and is handed the value model already wrapped with the same LoRA, so both train the
same parameters; with LoRA the reference is the policy with its adapters disabled, in both. Own folder
benchmarks/_work/ppo_vs_trl_smollm2.

`--heal_variant FLAGS` adds HEAL run with extra `heal ppo` flags as a contender of its own, named by its flags, with
its own ratio line. `--heal_variant='--share_backbone true'` is not TRL's algorithm: its value is a head on the
policy's trunk, where TRL 1.12 (and HEAL's default) train a separate value model started from the reward model —
the row's name says so, and the default HEAL row keeps the like-for-like ratio beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "_work" / "ppo_vs_trl"
TRL_VENV = REPO / "benchmarks" / "_work" / "trl-1.12.0-venv"
TRL_VERSION = "1.12.0"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
TRL = "TRL 1.12 PPOTrainer"
HELD_OUT = 100  # prompts never trained on, for the before/after evaluation

# The PPO knobs both contenders get (TRL 1.12 PPOConfig names); batch and response length come from the flags.
LORA = dict(r=16, alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # --lora, both contenders
KNOBS = dict(temperature=0.7, num_ppo_epochs=4, num_mini_batches=1, learning_rate=3e-4, kl_coef=0.05,
             kl_estimator="k1", cliprange=0.2, cliprange_value=0.2, vf_coef=0.1, gamma=1.0, lam=0.95,
             whiten_rewards=False, missing_eos_penalty=1.0, stop_token="eos", seed=0)


def heal(*argv: str) -> None:
    done = subprocess.run([sys.executable, "-m", "heal.cli", *argv], env=ENV, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"heal {argv[0]} failed:\n{done.stderr[-3000:]}")


def prepare_data(work: Path) -> dict:
    """1000 synthetic PubMedQA records as `heal prep` makes them (the prompts and the reward model's pairs)."""
    work.mkdir(parents=True, exist_ok=True)
    paths = {"raw": work / "pqal.json", "data": work / "pubmedqa.csv"}
    if not paths["data"].exists():
        heal("prep", "--dataset", "synthetic_pubmedqa", "--n", "1000", "--output_path", str(paths["raw"]))
        heal("prep", "--dataset", "pubmedqa", "--input_path", str(paths["raw"]), "--output_path", str(paths["data"]))
    return paths


def prepare_real(rm_steps: int) -> dict:
    """--model smollm2-135m: the policy is the packaged SmolLM2-135M-Instruct (no SFT); its reward model is trained
    from it with LoRA (merged on save) for `rm_steps` steps of 8 pairs, on the heal-tiny workload's data."""
    from heal.models.packaged import ensure_converted

    data = prepare_data(WORK.parent / "ppo_vs_trl")["data"]
    paths = {"data": data, "sft": ensure_converted("smollm2-135m"), "rm": WORK / "rm"}
    if not (paths["rm"] / "model.safetensors").exists():
        heal("reward", "--dataset_path", str(data), "--model_name", "smollm2-135m", "--output_dir", str(paths["rm"]),
             "--use_peft", "true", "--lora_r", str(LORA["r"]), "--lora_alpha", str(LORA["alpha"]),
             "--lora_target_modules", *LORA["target_modules"], "--max_steps", str(rm_steps),
             "--per_device_train_batch_size", "8", "--learning_rate", "3e-4", "--eval_split_size", "0.03",
             "--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--overwrite_output_dir")
    return {k: str(v) for k, v in paths.items()}


def prepare(sft_steps: int = 110, rm_epochs: int = 3) -> dict:
    """Data, SFT policy and reward model, built once and kept in benchmarks/_work/ppo_vs_trl: heal-tiny after 110 steps
    of sft_tiny_cpu.yaml (a policy that has begun to read the abstracts, as in docs/ppo.md), and a reward model trained
    from it for three epochs on reference-derived pairs."""
    paths = {**prepare_data(WORK), "sft": WORK / "sft", "rm": WORK / "rm"}
    common = ["--report_to", "none", "--disable_tqdm", "true", "--save_strategy", "no", "--overwrite_output_dir"]
    if not (paths["sft"] / "model.safetensors").exists():
        heal("sft", "--config", str(REPO / "experiments/configs/sft_tiny_cpu.yaml"), "--dataset_path",
             str(paths["data"]), "--output_dir", str(paths["sft"]), "--max_steps", str(sft_steps),
             "--eval_split_size", "0",
             "--eval_strategy", "no", *common)
    if not (paths["rm"] / "model.safetensors").exists():
        heal("reward", "--dataset_path", str(paths["data"]), "--model_name", str(paths["sft"]), "--output_dir",
             str(paths["rm"]), "--num_train_epochs", str(rm_epochs), "--per_device_train_batch_size", "16",
             "--eval_split_size", "0.1", *common)
    return {k: str(v) for k, v in paths.items()}


def trl_python() -> str:
    """Python of a venv with trl==1.12.0 (made once under benchmarks/_work), torch and transformers as HEAL's."""
    from importlib.metadata import version

    pins = {name: version(name) for name in ("torch", "transformers", "accelerate", "datasets", "peft")}
    python = TRL_VENV / "bin" / "python"
    marker = TRL_VENV / "heal-pins.json"
    wanted = {**pins, "trl": TRL_VERSION}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return str(python)
    print(f"making {TRL_VENV.relative_to(REPO)}: torch {pins['torch']}, then trl=={TRL_VERSION} (a few minutes)",
          file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(TRL_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"torch=={pins['torch']}"], check=True)  # first: keeps pip off the CUDA wheels
    subprocess.run([*pip, f"trl=={TRL_VERSION}", *(f"{n}=={pins[n]}" for n in ("transformers", "accelerate",
                                                                                "datasets", "peft", "torch"))],
                   check=True)
    check = subprocess.run([str(python), "-c", "import trl, trl.experimental.ppo as p; print(trl.__version__, "
                            "p.PPOTrainer.__name__)"], capture_output=True, text=True)
    if check.returncode or not check.stdout.startswith(TRL_VERSION):
        raise SystemExit(f"{TRL_VENV}: trl.experimental.ppo does not import:\n{check.stderr[-2000:]}")
    marker.write_text(json.dumps(wanted))
    return str(python)


# --- the contenders (each in its own process: `--worker heal|trl`) --------------------------------------------------

def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def read_prompts(path: str) -> list[dict]:
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def heal_run(args, paths: dict, out: Path, extra: list[str]):
    """HEAL's PPO run (heal.ppo.setup.PPORun) on the benchmark's workload and knobs, plus extra `heal ppo` flags."""
    import torch

    from heal.ppo import setup
    from heal.ppo.train import make_parser
    from heal.rl.rewards import parse_reward

    knobs = {**KNOBS, "response_length": args.response_length, "per_device_train_batch_size": args.batch,
             "local_rollout_forward_batch_size": args.batch, "max_steps": args.updates + 1}
    flags = [f"--{k}={v}" for k, v in knobs.items()]
    if getattr(args, "lora", False):
        flags += ["--use_peft", "true", "--lora_r", str(LORA["r"]), "--lora_alpha", str(LORA["alpha"]),
                  "--lora_target_modules", *LORA["target_modules"]]
    script, training, model_args = make_parser().parse([
        "--model_name", paths["sft"], "--reward_model_path", paths["rm"], "--dataset_path", paths["data"],
        "--output_dir", str(out / "unused"), "--max_grad_norm", "0", *flags, *extra])
    torch.manual_seed(0)
    prompts = read_prompts(paths["data"])[:-HELD_OUT]
    reward = parse_reward(script.reward, training.reward_model_path)
    return setup.build_run(script, training, model_args, reward, prompts, setup.batch_sizes(training, 1, len(prompts)),
                           credentialed=False, trackers=[])


def heal_worker(args, paths: dict, out: Path, extra: list[str]) -> dict:
    from heal.ppo.models import merged_policy
    from heal.ppo.train import ppo_update

    run = heal_run(args, paths, out, extra)
    times, logs = [], []
    for _ in range(args.updates + 1):
        started = time.perf_counter()
        metrics, _ = ppo_update(run)
        run.step += 1
        times.append(time.perf_counter() - started)
        logs.append({k: metrics[k] for k in ("objective/scores", "objective/kl")})
    merged_policy(run.unwrapped.policy).save_pretrained(out / "policy")  # LoRA merged: a plain causal LM
    run.tokenizer.save_pretrained(out / "policy")
    return {"update_seconds": times[1:], "warmup_seconds": times[0], "logs": logs, "peak_rss_mb": peak_rss_mb(),
            "versions": _versions()}


def trl_worker(args, paths: dict, out: Path) -> dict:
    """TRL 1.12's PPOTrainer on the same models, prompts and knobs (run by TRL 1.12's own Python)."""
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
    prompts = [row["prompt"] for row in read_prompts(paths["data"])[:-HELD_OUT]]
    dataset = Dataset.from_dict({"input_ids": [tokenizer(format_prompt(tokenizer, p))["input_ids"] for p in prompts]})
    config = PPOConfig(output_dir=str(out / "unused"), per_device_train_batch_size=args.batch,
                       gradient_accumulation_steps=1, local_rollout_forward_batch_size=args.batch,
                       response_length=args.response_length, total_episodes=args.batch * (args.updates + 1),
                       bf16=False, gradient_checkpointing=False, use_cpu=True, num_sample_generations=0,
                       report_to="none", save_strategy="no", logging_steps=1, disable_tqdm=True, **KNOBS)
    stamps, rows = [], []

    class Clock(TrainerCallback):
        def on_step_end(self, *_, **__):
            stamps.append(time.perf_counter())

        def on_log(self, _args, _state, _control, logs=None, **_):
            if logs and "objective/scores" in logs:
                rows.append({k: logs[k] for k in ("objective/scores", "objective/kl")})

    reward_model = AutoModelForSequenceClassification.from_pretrained(paths["rm"])
    normalise_head(reward_model)
    value_model = AutoModelForSequenceClassification.from_pretrained(paths["rm"])
    lora = {}
    if args.lora:  # the policy's LoRA through peft_config; the value model's as HEAL applies it (TRL 1.12 does not)
        from peft import LoraConfig, get_peft_model

        options = dict(r=LORA["r"], lora_alpha=LORA["alpha"], target_modules=LORA["target_modules"])
        value_model = get_peft_model(value_model, LoraConfig(task_type="SEQ_CLS", **options)).base_model.model
        lora = {"peft_config": LoraConfig(task_type="CAUSAL_LM", **options)}
    trainer = PPOTrainer(args=config, processing_class=tokenizer,
                         model=AutoModelForCausalLM.from_pretrained(paths["sft"]),
                         ref_model=None if args.lora else AutoModelForCausalLM.from_pretrained(paths["sft"]),
                         reward_model=reward_model, value_model=value_model,
                         train_dataset=dataset, eval_dataset=dataset.select(range(8)), callbacks=[Clock()], **lora)
    started = time.perf_counter()
    trainer.train()
    times = [b - a for a, b in zip([started, *stamps], stamps)]
    policy = trainer.accelerator.unwrap_model(trainer.model).policy
    if hasattr(policy, "merge_and_unload"):
        policy = policy.merge_and_unload()
    policy.save_pretrained(out / "policy")
    tokenizer.save_pretrained(out / "policy")
    return {"update_seconds": times[1:], "warmup_seconds": times[0], "logs": rows, "peak_rss_mb": peak_rss_mb(),
            "versions": _versions()}


def normalise_head(reward_model) -> None:
    """Give the reward model a head that outputs HEAL's normalised score (r − mean) / std (config.json's stats)."""
    import torch

    stats = getattr(reward_model.config, "heal_reward_normalization", None) or {}
    mean, std = float(stats.get("mean", 0.0)), float(stats.get("std", 1.0)) or 1.0
    old = reward_model.score
    head = torch.nn.Linear(old.in_features, 1, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight / std)
        head.bias.fill_(-mean / std)
        if getattr(old, "bias", None) is not None:
            head.bias.add_(old.bias / std)
    reward_model.score = head


def _versions() -> str:
    import torch
    import transformers
    import trl

    return f"trl {trl.__version__}, transformers {transformers.__version__}, torch {torch.__version__}"


# --- the same evaluation for every policy (HEAL's venv) -------------------------------------------------------------

def evaluate(args, paths: dict, policies: dict[str, str]) -> dict[str, dict]:
    """Per policy: mean normalised reward, accuracy and KL to the SFT policy of sampled answers to held-out prompts."""
    import torch
    from transformers import AutoModelForCausalLM

    from heal.data.pubmedqa import parse_decision
    from heal.models.loading import load_tokenizer
    from heal.ppo.losses import logprobs_of
    from heal.rl.rewards import RewardModelSource, ScoringBatch, sequence_inputs
    from heal.rl.sampling import decode, encode_prompts, generate, left_pad, truncate_after_stop

    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(paths["sft"])
    reward = RewardModelSource(paths["rm"], tokenizer)
    records = read_prompts(paths["data"])[-HELD_OUT:][:args.eval_prompts]
    reference = AutoModelForCausalLM.from_pretrained(paths["sft"]).eval()
    stop, pad, temperature = [tokenizer.eos_token_id], tokenizer.pad_token_id, KNOBS["temperature"]
    query, query_mask = left_pad(encode_prompts(tokenizer, records, None, 1024), pad)

    def logprobs(model, response, response_mask):
        inputs = sequence_inputs(query, query_mask, response, response_mask)
        logits = model(input_ids=inputs[0], attention_mask=inputs[1], position_ids=inputs[2],
                       logits_to_keep=response.shape[1] + 1).logits[:, :-1]
        return logprobs_of(logits / temperature, response) * response_mask

    results = {}
    for name, path in policies.items():
        policy = AutoModelForCausalLM.from_pretrained(path).eval()
        scores, correct, kls = [], [], []
        for sample in range(args.eval_samples):
            torch.manual_seed(1000 + sample)
            with torch.no_grad():
                raw = generate(policy, query, query_mask, args.response_length, temperature, stop, pad)
                response, mask, _ = truncate_after_stop(raw, stop, pad)
                texts = decode(tokenizer, response, mask, stop)
                batch = ScoringBatch(query, query_mask, response, mask, [r["prompt"] for r in records], texts,
                                     records)
                scores += reward.score(batch).tolist()
                kls += (logprobs(policy, response, mask) - logprobs(reference, response, mask)).sum(1).tolist()
            correct += [parse_decision(t) == r["label"] for t, r in zip(texts, records)]
        results[name] = {"score": statistics.fmean(scores), "accuracy": statistics.fmean(correct),
                         "kl": statistics.fmean(kls)}
    return results


# --- the table ------------------------------------------------------------------------------------------------------

def run_worker(python: str, mode: str, args, paths: dict, out: Path, extra: str = "") -> dict:
    command = [python, __file__, "--worker", mode, "--paths", json.dumps(paths), "--out", str(out),
               f"--heal_flags={extra}",
               "--batch", str(args.batch), "--response_length", str(args.response_length),
               "--updates", str(args.updates), *(["--lora"] if args.lora else [])]
    env = {**ENV, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{mode} worker failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    (out / "result.json").write_text(json.dumps(result))  # each run's numbers survive an interrupted benchmark
    return result


def table(results: dict[str, dict], evals: dict[str, dict], args) -> str:
    before = evals["SFT (before)"]
    model = args.model + (" with LoRA" if args.lora else "")
    lines = [f"PPO on {model}: {args.batch} rollouts/update, {args.response_length}-token responses, "
             f"{args.updates} timed updates (+1 warm-up), {args.threads} torch thread(s); held-out: "
             f"{min(args.eval_prompts, HELD_OUT)} prompts × {args.eval_samples} sampled answers", "",
             "| contender | episodes/s | s/update (median) | warm-up update (s) | peak RSS (MB) | held-out score "
             "before → after | held-out accuracy before → after | KL to SFT after | training score first → last 5 | "
             "versions |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        e, logs = evals[name], r["logs"]
        last = statistics.fmean(row["objective/scores"] for row in logs[-5:])
        lines.append(f"| {name} | {r['episodes_per_second']:.2f} | {r['seconds_per_update']:.2f} | "
                     f"{r.get('warmup_seconds', float('nan')):.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{before['score']:+.3f} → {e['score']:+.3f} | "
                     f"{before['accuracy']:.3f} → {e['accuracy']:.3f} | {e['kl']:.2f} | "
                     f"{logs[0]['objective/scores']:+.3f} → {last:+.3f} | {r['versions']} |")
    if TRL in results:
        lines.append("")
        for name in (n for n in results if n != TRL):
            lines += ratios(name, results[name], results[TRL], evals, before)
    return "\n".join(lines)


def ratios(name: str, heal_r: dict, trl_r: dict, evals: dict, before: dict) -> list[str]:
    """One HEAL contender against TRL: the three targets, then the speed ratio of each interleaved repeat."""
    speed = heal_r["episodes_per_second"] / trl_r["episodes_per_second"]
    rss = heal_r["peak_rss_mb"] / trl_r["peak_rss_mb"]
    gain, trl_gain = evals[name]["score"] - before["score"], evals[TRL]["score"] - before["score"]
    met = lambda ok: "met" if ok else "missed"  # noqa: E731
    return [f"{name} / TRL: episodes/s {speed:.2f}× (target ≥ 1.5×: {met(speed >= 1.5)}), peak RSS {rss:.2f}× "
            f"(target ≤ 1: {met(rss <= 1)}), held-out score gain {gain:+.3f} vs {trl_gain:+.3f} (target ≥ TRL's: "
            f"{met(gain >= trl_gain)}); per interleaved repeat, TRL s/update ÷ this s/update: " + ", ".join(
                f"{t / h:.2f}×" for h, t in zip(heal_r["repeat_seconds_per_update"], trl_r["repeat_seconds_per_update"]))]


def contend(contenders: dict[str, tuple[str, str, str]], args, paths: dict) -> dict[str, dict]:
    """Run each contender --repeats times, interleaved (HEAL, TRL, HEAL, TRL, …) so that load from other jobs on a
    shared machine falls on both alike. A contender's s/update is the median over repeats of each run's median; its
    peak RSS the largest; its policy and logs those of the first run."""
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for i in range(args.repeats):
        for name, (python, mode, extra) in contenders.items():
            runs[name].append(run_worker(python, mode, args, paths, out_dir(name, i), extra))
            print(f"repeat {i + 1}: {name} {statistics.median(runs[name][-1]['update_seconds']):.3f} s/update",
                  file=sys.stderr)
    results = {}
    for name, repeats in runs.items():
        medians = [statistics.median(r["update_seconds"]) for r in repeats]
        median = statistics.median(medians)
        results[name] = {**repeats[0], "seconds_per_update": median, "episodes_per_second": args.batch / median,
                         "repeat_seconds_per_update": medians, "peak_rss_mb": max(r["peak_rss_mb"] for r in repeats)}
    return results


def out_dir(name: str, repeat: int) -> Path:
    """benchmarks/_work/…/out/<contender as a file name>-<repeat>: each run's policy and result.json."""
    return WORK / "out" / f"{re.sub(r'[^A-Za-z0-9.]+', '_', name).strip('_')}-{repeat}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trl_python", default=os.environ.get("HEAL_TRL112_PYTHON"),
                        help="Python of a venv with trl==1.12.0 (default: $HEAL_TRL112_PYTHON, else a venv made under "
                             "benchmarks/_work)")
    parser.add_argument("--batch", type=int, default=16, help="rollouts per PPO update")
    parser.add_argument("--response_length", type=int, default=32)
    parser.add_argument("--updates", type=int, default=20, help="timed updates (after one warm-up update)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per contender, interleaved; the median is kept")
    parser.add_argument("--eval_samples", type=int, default=4, help="sampled answers per held-out prompt")
    parser.add_argument("--sft_steps", type=int, default=110,
                        help="SFT steps of the policy (fewer: a quicker, less trained workload, own folder)")
    parser.add_argument("--rm_epochs", type=int, default=3, help="reward model epochs (as --sft_steps)")
    parser.add_argument("--model", default="heal-tiny", choices=["heal-tiny", "smollm2-135m"],
                        help="heal-tiny after SFT (default), or the real SmolLM2-135M-Instruct (see the docstring)")
    parser.add_argument("--lora", action="store_true", help="LoRA on the policy and the value model, both contenders")
    parser.add_argument("--rm_steps", type=int, default=16, help="--model smollm2-135m: reward model LoRA steps")
    parser.add_argument("--eval_prompts", type=int, default=HELD_OUT, help="held-out prompts evaluated (≤ 100)")
    parser.add_argument("--only", choices=["heal", "trl"], help="run one contender (profiling)")
    parser.add_argument("--heal_variant", action="append", default=[], metavar="FLAGS",
                        help="also run HEAL with these extra `heal ppo` flags, as its own contender (repeatable), "
                             "e.g. --heal_variant='--share_backbone true'")
    parser.add_argument("--heal_flags", default="", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["heal", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        paths, out = json.loads(args.paths), Path(args.out)
        result = (trl_worker(args, paths, out) if args.worker == "trl" else
                  heal_worker(args, paths, out, shlex.split(args.heal_flags)))
        print(json.dumps(result))
        return
    global WORK
    if args.model == "smollm2-135m":
        WORK = WORK.parent / f"ppo_vs_trl_smollm2{'_lora' if args.lora else ''}"
        paths = prepare_real(args.rm_steps)
    else:
        if (args.sft_steps, args.rm_epochs) != (110, 3):  # a lighter workload gets its own folder
            WORK = WORK.parent / f"ppo_vs_trl_sft{args.sft_steps}_rm{args.rm_epochs}"
        paths = prepare(args.sft_steps, args.rm_epochs)
    python = args.trl_python or (None if args.only == "heal" else trl_python())
    contenders = {}
    if args.only != "trl":
        contenders["HEAL"] = (sys.executable, "heal", "")
        for flags in args.heal_variant:
            contenders[f"HEAL {flags}"] = (sys.executable, "heal", flags)
    if args.only != "heal":
        contenders[TRL] = (python, "trl", "")
    results = contend(contenders, args, paths)
    policies = {"SFT (before)": paths["sft"], **{name: str(out_dir(name, 0) / "policy") for name in results}}
    evals = evaluate(args, paths, policies)
    (WORK / "results.json").write_text(json.dumps({"args": vars(args), "results": results, "evals": evals}, indent=1))
    print(table(results, evals, args))


if __name__ == "__main__":
    main()
