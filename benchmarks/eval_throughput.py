"""Benchmark: eval generation and scoring speed, in one run.

    python benchmarks/eval_throughput.py                         # heal-tiny at its default size, CPU or GPU
    python benchmarks/eval_throughput.py --batch_sizes 8 32 --max_new_tokens 16
    python benchmarks/eval_throughput.py --model smollm2-135m --items 50 --eval_max_new_tokens 16 --eval_batch_size 8

Two comparisons, each against a baseline measured in the same run and on the same model:
1. Generation throughput on 128 PubMedQA prompts: sequential (batch size 1, the baseline) against batched,
   left-padded generation (heal.models.generate.HFBackend) — generated tokens per second.
2. PubMedQA evaluation time on the 500 shared items (../shared/data/pubmedqa): generative scoring (generate up to
   `heal eval`'s 64 tokens, then parse yes/no/maybe; the baseline) against log-likelihood scoring of Yes./No./Maybe.
   with the prompt's cache shared by the three choices — seconds and items per second.
3. Both PubMedQA modes, as `heal eval` runs them: one after the other (the baseline) against one shared pass over each
   prompt (HFBackend.generate_and_score), with the share of identical generations and the largest log-likelihood
   difference between the two.

`--model` takes any model `heal eval` loads (a run folder, a Hub id, `smollm2-135m`); by default heal-tiny is built
from the PubMedQA texts (untrained, so it rarely stops early: every generation runs to
max_new_tokens, which is what a throughput measurement wants). Decoding is greedy. Timings include tokenization and
decoding, as `heal eval` pays them; model building is excluded.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
PUBMEDQA = REPO.parent / "shared" / "data" / "pubmedqa" / "ori_pqal_trainval.json"


def records(path: Path) -> list[dict]:
    from heal.data.pubmedqa import load_pqal, to_record

    data = load_pqal(path)
    return [to_record(pmid, item) for pmid, item in data.items()]


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def generation_rows(backend, texts: list[str], batch_sizes: list[int], max_new_tokens: int) -> list[dict]:
    rows = []
    for batch_size in [1, *batch_sizes]:
        backend.batch_size = batch_size
        outs, seconds = timed(lambda: backend.generate(texts, max_new_tokens))
        tokens = sum(o.completion_tokens for o in outs)
        rows.append({"what": f"generate, batch {batch_size}" + (" (baseline)" if batch_size == 1 else ""),
                     "items": len(texts), "seconds": seconds, "tokens": tokens, "rate": tokens / seconds})
    return rows


def scoring_rows(backend, recs: list[dict], batch_size: int, max_new_tokens: int) -> list[dict]:
    from heal.data.pubmedqa import parse_decision
    from heal.eval.qa import CHOICES

    backend.batch_size = batch_size
    texts = [backend.render(r["prompt"]) for r in recs]
    outs, gen_seconds = timed(lambda: backend.generate(texts, max_new_tokens))
    parsed = sum(parse_decision(o.text) is not None for o in outs)
    _, ll_seconds = timed(lambda: backend.choice_loglikelihoods(texts, list(CHOICES.values())))
    return [{"what": f"PubMedQA generative (≤{max_new_tokens} tokens, baseline)", "items": len(recs),
             "seconds": gen_seconds, "rate": len(recs) / gen_seconds, "parsed": parsed},
            {"what": "PubMedQA log-likelihood (shared prefix)", "items": len(recs), "seconds": ll_seconds,
             "rate": len(recs) / ll_seconds}]


def both_modes_rows(backend, recs: list[dict], batch_size: int, max_new_tokens: int) -> tuple[list[dict], str]:
    from heal.eval.qa import CHOICES

    backend.batch_size = batch_size
    texts, choices = [backend.render(r["prompt"]) for r in recs], list(CHOICES.values())
    (outs, scores), apart_seconds = timed(lambda: (backend.generate(texts, max_new_tokens),
                                                  backend.choice_loglikelihoods(texts, choices)))
    (shared_outs, shared_scores), shared_seconds = timed(
        lambda: backend.generate_and_score(texts, choices, max_new_tokens))
    same = sum(a.text == b.text for a, b in zip(outs, shared_outs))
    gap = max(abs(x - y) for a, b in zip(scores, shared_scores) for x, y in zip(a, b))
    rows = [{"what": "generate, then log-likelihood (baseline)", "items": len(recs), "seconds": apart_seconds,
             "rate": len(recs) / apart_seconds},
            {"what": "one shared pass (generate_and_score)", "items": len(recs), "seconds": shared_seconds,
             "rate": len(recs) / shared_seconds}]
    return rows, f"identical generations {same}/{len(recs)}; largest log-likelihood difference {gap:.1e}"


def print_table(title: str, rows: list[dict], unit: str) -> None:
    base = rows[0]["rate"]
    print(f"\n{title}\n")
    print(f"| run | items | seconds | {unit} | vs baseline |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['what']} | {row['items']} | {row['seconds']:.2f} | {row['rate']:.1f} | "
              f"{row['rate'] / base:.2f}x |")


def main() -> None:
    import torch

    from heal.models.generate import HFBackend, load_model
    from heal.models.tiny import TinyConfig, build_heal_tiny

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pubmedqa", default=str(PUBMEDQA), help="ori_pqal.json-style file (500 items)")
    parser.add_argument("--model", default="heal-tiny", help="heal-tiny (built here) or any model heal eval loads")
    parser.add_argument("--items", type=int, default=None, help="PubMedQA items for comparisons 2 and 3 (all)")
    parser.add_argument("--n_prompts", type=int, default=128, help="prompts for the generation comparison")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 64], help="batched runs to compare")
    parser.add_argument("--max_new_tokens", type=int, default=32, help="tokens per generation (comparison 1)")
    parser.add_argument("--eval_max_new_tokens", type=int, default=64, help="`heal eval`'s PubMedQA default")
    parser.add_argument("--eval_batch_size", type=int, default=16, help="`heal eval`'s default batch size")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()

    torch.manual_seed(0)
    recs = records(Path(args.pubmedqa))[: args.items]
    if args.model == "heal-tiny":
        model, tokenizer = build_heal_tiny([t for r in recs for t in (r["prompt"], r["completion"])], TinyConfig())
    else:
        model, tokenizer, _ = load_model(args.model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backend = HFBackend(model.to(device), tokenizer, progress=False)
    texts = [backend.render(r["prompt"]) for r in recs[: args.n_prompts]]
    print(f"{args.model} {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters on {device} "
          f"({torch.get_num_threads()} threads, torch {torch.__version__}, {platform.processor() or platform.machine()}"
          f"); prompts: mean {sum(len(tokenizer(t)['input_ids']) for t in texts) / len(texts):.0f} tokens")
    backend.generate(texts[:4], 4)  # warm-up: first-call allocations are not what we measure
    gen = generation_rows(backend, texts, args.batch_sizes, args.max_new_tokens)
    print_table(f"1. Generation, {len(texts)} prompts × {args.max_new_tokens} new tokens (greedy)", gen, "tokens/s")
    score = scoring_rows(backend, recs, args.eval_batch_size, args.eval_max_new_tokens)
    print_table(f"2. PubMedQA eval on {len(recs)} items, batch {args.eval_batch_size}", score, "items/s")
    both, check = both_modes_rows(backend, recs, args.eval_batch_size, args.eval_max_new_tokens)
    print_table(f"3. Both PubMedQA modes on {len(recs)} items, batch {args.eval_batch_size}", both, "items/s")
    print(f"\n{check}")
    if args.json:
        Path(args.json).write_text(json.dumps({"generation": gen, "pubmedqa": score, "both_modes": both}, indent=2))


if __name__ == "__main__":
    main()
