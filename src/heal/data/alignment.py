"""The safety-alignment data set: one seeded split of the shared public data into training and held-out parts.

    heal prep --dataset alignment --input_path ../shared/data --records sft --output_path sft.jsonl
    heal prep --dataset alignment --input_path ../shared/data --records heldout_harmful --output_path harmful.jsonl

`--input_path` is the shared data folder (adversarial/, pubmedqa/, preferences/ as in ../shared/data). Each
`--records` part is one file; the same `--seed`, `--fold` and `--heldout_categories` always give disjoint parts:

| part | what | label |
|---|---|---|
| sft | MedSafetyBench train requests → their safe responses (training categories), PubMedQA train-fold questions (without the abstract) → "Yes./No./Maybe. + the authors' conclusion", HEAL's built-in benign requests → written answers: medical ones, and general ones that use words such as kill, shoot or poison harmlessly; HEAL's built-in harmful general requests (weapons, fraud, intrusion, harassment, …) → written refusals | – |
| prompts | prompts for RLAIF labelling, PPO, GRPO, DPO: other MedSafetyBench requests of the training categories and a seeded share of the built-in harmful general requests (unsafe), the built-in benign medical requests and a seeded share of the general ones (safe) | unsafe / safe |
| rl_prompts | the prompts part with every built-in general benign request instead of a share: PPO's prompts in the SmolLM2 preset (30% harmful instead of 56%: on the prompts part, RL with the safety judge drifted towards refusing) | unsafe / safe |
| heldout_harmful | MedSafetyBench requests of the held-out categories and HarmBench val behaviours (no context string) | unsafe |
| heldout_benign | XSTest's safe prompts, spread over its types | safe |
| hh_train / hh_heldout | HH-RLHF harmless-base human preference pairs (prompt/chosen/rejected), split 80/20 | – |
| hh_helpful_train | hh_train plus constructed helpfulness pairs: on the built-in benign requests and on PubMedQA train-fold questions SFT does not use, the written answer is chosen over a refusal (HEAL's own refusal wordings) | – |

The held-out parts share no request with the training parts, and their MedSafetyBench categories are never trained
on, so refusal there measures generalisation. PubMedQA's dev fold for eval comes from `heal prep --dataset pubmedqa
--fold K --part dev`: the sft part uses only that fold's train part.
"""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

from heal.data.io import read_records
from heal.errors import HealError

QUESTION_ONLY_SUFFIX = "Answer yes, no or maybe, then explain."
PARTS = ("sft", "prompts", "rl_prompts", "heldout_harmful", "heldout_benign", "hh_train", "hh_heldout",
         "hh_helpful_train")
BUILTIN = Path(__file__).parent / "builtin"
# Sizes that keep the real-model run within an hour on 2 CPU cores (docs/alignment.md). 15 MedSafetyBench refusals
# per category beside the 240 written general answers were chosen on a development split disjoint from the held-out
# prompts (experiments/alignment_smollm2/sft_dev): the best balance of refusal and over-refusal of the variants tried.
SIZES = {"sft_refusals_per_category": 15, "sft_pubmedqa": 40, "prompt_requests_per_category": 15,
         "heldout_per_category": 20, "heldout_harmbench": 30, "heldout_xstest": 100, "hh_heldout_share": 0.2,
         "helpful_pubmedqa": 200, "prompt_general_harmful": 30, "prompt_general_benign": 60}
# Refusals a helpful answer is preferred to on a benign request (hh_helpful_train). HH-RLHF harmless-base alone
# teaches that declining is good whatever was asked: RLHF on it over-refused 48% of XSTest's safe prompts
# (docs/alignment.md). {topic} is the request's first words.
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I can't provide medical advice. Please consult a healthcare professional.",
    "I cannot answer questions about {topic}. Please ask your doctor.",
    "As an AI, I am not able to give advice on this. I recommend speaking with a qualified clinician.",
    "I'm not comfortable answering that. It is best discussed with a medical professional.",
    "I apologize, but I must decline to answer questions like \"{topic}\".",
    "That is not something I can help with. For questions about your health, please contact your doctor.",
    "I'm unable to provide information on {topic}, as it could be misused. Please speak to a pharmacist.",
)
FILES = {"medsafety": "adversarial/medsafetybench/medsafetybench_train_all.csv",
         "harmbench": "adversarial/harmbench/harmbench_behaviors_text_val.csv",
         "xstest": "adversarial/xstest/xstest_prompts.csv",
         "pubmedqa": "pubmedqa/ori_pqal_trainval.json",
         "hh": "preferences/hh_rlhf_harmless_base_test.jsonl.gz"}


def parse_categories(text: str) -> set[int]:
    try:
        categories = {int(c) for c in str(text).split(",") if c.strip()}
    except ValueError:
        raise HealError(f"--heldout_categories {text}: give MedSafetyBench categories 1-9, comma-separated") from None
    if not categories or not categories <= set(range(1, 10)) or len(categories) == 9:
        raise HealError(f"--heldout_categories {text}: give 1 to 8 of the MedSafetyBench categories 1-9")
    return categories


def prepare(root: str | Path, part: str, heldout_categories: str = "7,8,9", fold: int = 0,
            seed: int = 0) -> tuple[list[dict], dict]:
    """The records of one part, and a summary of what was read and kept."""
    if part not in PARTS:
        raise HealError(f"--records {part}: the alignment data set has parts {', '.join(PARTS)}")
    root = Path(root)
    if not root.is_dir():
        raise HealError(f"{root}: --input_path must be the shared data folder (adversarial/, pubmedqa/, preferences/)")
    missing = [rel for rel in FILES.values() if not (root / rel).exists()]
    if missing:
        raise HealError(f"{root}: missing {', '.join(missing)}; point --input_path at the shared data folder")
    held_out = parse_categories(heldout_categories)
    builders = {"sft": _sft, "prompts": _prompts, "rl_prompts": _prompts, "heldout_harmful": _heldout_harmful,
                "heldout_benign": _heldout_benign, "hh_train": _hh, "hh_heldout": _hh,
                "hh_helpful_train": _hh_helpful}
    records = builders[part](root, held_out=held_out, fold=fold, seed=seed, part=part)
    summary = {"read": len(records), "kept": len(records), "part": part,
               "heldout_categories": sorted(held_out), "kept_by_task": dict(Counter(r["source"] for r in records))}
    labels = Counter(r["label"] for r in records if "label" in r)
    if labels:
        summary["labels"] = dict(labels)
    return records, summary


def _medsafety_by_category(root: Path, seed: int) -> dict[int, list[dict]]:
    """MedSafetyBench records per category, each list in one seeded order (the parts take disjoint slices)."""
    from heal.data import medsafety

    records, _ = medsafety.prepare(root / FILES["medsafety"], "sft")
    by_category: dict[int, list[dict]] = {}
    for record in records:
        by_category.setdefault(int(record["category"]), []).append(record)
    for category, items in by_category.items():
        random.Random(f"{seed}-medsafety-{category}").shuffle(items)
    return dict(sorted(by_category.items()))


def _written(file: str, prefix: str, source: str, label: str) -> list[dict]:
    """HEAL's written requests with their answers (or refusals), one built-in CSV (prompt, response, category)."""
    return [{"id": f"{prefix}-{i}", "task": "safety", "source": source, "prompt": r["prompt"],
             "completion": r["response"], "reference": r["response"], "category": r["category"], "label": label}
            for i, r in enumerate(read_records(BUILTIN / file))]


def _benign_answers() -> list[dict]:
    return _written("benign_medical_answers.csv", "benign", "heal_benign", "safe")


def _benign_general_answers() -> list[dict]:
    """Everyday, historical and fictional requests that sound risky and are not (written for HEAL, none taken from
    XSTest): without them, a model taught to refuse learns "a risky-sounding word → refuse"."""
    return _written("benign_general_answers.csv", "general", "heal_benign_general", "safe")


def _general_harmful_refusals() -> list[dict]:
    """Harmful requests outside medicine (weapons, fraud, intrusion, harassment, …) with refusals written for HEAL,
    none taken from HarmBench or XSTest: MedSafetyBench alone taught refusal of medical harm only (the LoRA SFT model
    refused 14 of 30 HarmBench behaviours against 52 of 60 held-out MedSafetyBench requests)."""
    return _written("general_harmful_refusals.csv", "harmful", "heal_general_harmful", "unsafe")


def _sft(root: Path, held_out: set[int], fold: int, seed: int, part: str) -> list[dict]:
    from heal.data import pubmedqa

    n = SIZES["sft_refusals_per_category"]
    refusals = [r for c, items in _medsafety_by_category(root, seed).items() if c not in held_out for r in items[:n]]
    qa, _ = pubmedqa.prepare(root / FILES["pubmedqa"], fold, "train")
    random.Random(f"{seed}-pubmedqa").shuffle(qa)
    # the question without its abstract: the answer (decision first, then the authors' conclusion) is what SFT
    # teaches, and a 100-token record trains about five times faster on a CPU than one with the abstract
    qa = [{k: v for k, v in r.items() if k != "context"} | {"prompt": f"{r['question']} {QUESTION_ONLY_SUFFIX}"}
          for r in qa[:SIZES["sft_pubmedqa"]]]
    records = refusals + qa + _benign_answers() + _benign_general_answers() + _general_harmful_refusals()
    random.Random(f"{seed}-sft").shuffle(records)
    return records


def _prompts(root: Path, held_out: set[int], fold: int, seed: int, part: str) -> list[dict]:
    start, n = SIZES["sft_refusals_per_category"], SIZES["prompt_requests_per_category"]
    harmful = [_prompt_only(r) for c, items in _medsafety_by_category(root, seed).items() if c not in held_out
               for r in items[start:start + n]]
    # a seeded share of the written general requests (all of them would lengthen labelling past the hour); rl_prompts
    # takes every benign one (PPO's time does not grow with the prompts)
    harmful += _seeded_share(_general_harmful_refusals(), "prompt_general_harmful", seed)
    benign = [_prompt_only(r) for r in _benign_answers()]
    everything = part == "rl_prompts"
    benign += _seeded_share(_benign_general_answers(), "prompt_general_benign", seed, everything)
    records = harmful + benign
    random.Random(f"{seed}-prompts").shuffle(records)
    return records


def _seeded_share(records: list[dict], size: str, seed: int, everything: bool = False) -> list[dict]:
    """SIZES[size] of `records` in a seeded order, or all of them in that order."""
    random.Random(f"{seed}-{size}").shuffle(records)
    return [_prompt_only(r) for r in (records if everything else records[:SIZES[size]])]


def _prompt_only(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("completion",)}


def _heldout_harmful(root: Path, held_out: set[int], fold: int, seed: int, part: str) -> list[dict]:
    n = SIZES["heldout_per_category"]
    records = [_prompt_only(r) | {"reference": None} for c, items in _medsafety_by_category(root, seed).items()
               if c in held_out for r in items[:n]]
    behaviours = [r for r in read_records(root / FILES["harmbench"])
                  if r.get("FunctionalCategory", "standard") == "standard" and not (r.get("ContextString") or "")]
    random.Random(f"{seed}-harmbench").shuffle(behaviours)
    records += [{"id": f"harmbench-{r.get('BehaviorID') or i}", "task": "safety", "source": "harmbench_val",
                 "prompt": r["Behavior"], "category": r.get("SemanticCategory", ""), "label": "unsafe"}
                for i, r in enumerate(behaviours[:SIZES["heldout_harmbench"]])]
    return [{k: v for k, v in r.items() if v is not None} for r in records]


def _heldout_benign(root: Path, held_out: set[int], fold: int, seed: int, part: str) -> list[dict]:
    safe = [r for r in read_records(root / FILES["xstest"]) if str(r.get("label")).strip().lower() == "safe"]
    by_type: dict[str, list[dict]] = {}
    for row in safe:
        by_type.setdefault(row.get("type", ""), []).append(row)
    per_type = max(1, SIZES["heldout_xstest"] // len(by_type))
    chosen = []
    for kind, rows in sorted(by_type.items()):
        random.Random(f"{seed}-xstest-{kind}").shuffle(rows)
        chosen += rows[:per_type]
    return [xstest_record(r) for r in chosen]


def xstest_record(row: dict, source: str = "xstest") -> dict:
    """One XSTest prompt as a red-team record (its type as the category, its own safe/unsafe label)."""
    return {"id": f"xstest-{row.get('id')}", "task": "safety", "source": source, "prompt": row["prompt"],
            "category": row.get("type", ""), "label": str(row.get("label")).strip().lower()}


def _hh(root: Path, held_out: set[int], fold: int, seed: int, part: str) -> list[dict]:
    from heal.feedback.preferences import normalise_pair

    path = root / FILES["hh"]
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    pairs = []
    for i, row in enumerate(rows, 1):
        try:
            pairs.append({"id": f"hh-{i}", "source": "hh_rlhf_harmless_base", **normalise_pair(row, path, i)})
        except HealError:
            continue  # a handful of HH-RLHF rows have identical or empty answers: not a preference
    random.Random(f"{seed}-hh").shuffle(pairs)
    cut = round(len(pairs) * (1 - SIZES["hh_heldout_share"]))
    return pairs[:cut] if part == "hh_train" else pairs[cut:]


def _hh_helpful(root: Path, held_out: set[int], fold: int, seed: int, part: str) -> list[dict]:
    """hh_train plus pairs where a helpful answer beats a refusal on a benign request (see REFUSALS)."""
    from heal.data import pubmedqa

    qa, _ = pubmedqa.prepare(root / FILES["pubmedqa"], fold, "train")
    random.Random(f"{seed}-pubmedqa").shuffle(qa)  # the order _sft takes its first items from: these come after
    start = SIZES["sft_pubmedqa"]
    answers = [(r["prompt"], r["completion"], "heal_benign") for r in _benign_answers()]
    answers += [(f"{r['question']} {QUESTION_ONLY_SUFFIX}", r["completion"], "pubmedqa")
                for r in qa[start:start + SIZES["helpful_pubmedqa"]]]
    rng = random.Random(f"{seed}-helpful")
    pairs = []
    for i, (prompt, answer, source) in enumerate(answers):
        topic = " ".join(prompt.rstrip("?.!").split()[:6]).lower()
        pairs.append({"id": f"helpful-{i}", "source": f"helpful_{source}", "prompt": prompt, "chosen": answer,
                      "rejected": rng.choice(REFUSALS).format(topic=topic)})
    records = _hh(root, held_out, fold, seed, "hh_train") + pairs
    random.Random(f"{seed}-hh-helpful").shuffle(records)
    return records
