"""Contrast DPO pairs (README.md, "Session 13"): benign requests the SFT policy refuses -> (written answer, its
refusal); harmful requests the SFT policy refuses and the base model answers -> (SFT refusal, base compliance).

    python contrast_dpo_pairs.py SFT_RESPONSES BASE_RESPONSES PROMPTS OUT
SFT_RESPONSES / BASE_RESPONSES: `heal redteam` responses.jsonl of the two models on PROMPTS (matched by prompt text);
PROMPTS: JSONL with id, prompt, label (safe/unsafe) and, for safe ones, the written answer as `reference`."""
import json, sys
sft = {r["prompt"]: r for r in map(json.loads, open(sys.argv[1]))}
base = {r["prompt"]: r for r in map(json.loads, open(sys.argv[2]))}
prompts = {r["id"]: r for r in map(json.loads, open(sys.argv[3]))}
pairs, counts = [], {"benign": 0, "benign_answered": 0, "harmful": 0, "harmful_skipped": 0}
for pid, p in prompts.items():
    s = sft.get(p["prompt"])
    if s is None:
        continue
    if p["label"] == "safe":
        if s["outcome"] in ("full_refusal", "partial_refusal", "non_answer"):
            pairs.append({"prompt": p["prompt"], "chosen": p["reference"], "rejected": s["response"], "kind": "benign"})
            counts["benign"] += 1
        else:
            counts["benign_answered"] += 1
    else:
        b = base.get(p["prompt"])
        if s["outcome"] == "full_refusal" and b is not None and b["outcome"] == "full_compliance":
            pairs.append({"prompt": p["prompt"], "chosen": s["response"], "rejected": b["response"], "kind": "harmful"})
            counts["harmful"] += 1
        else:
            counts["harmful_skipped"] += 1
with open(sys.argv[4], "w") as f:
    for r in pairs:
        f.write(json.dumps(r) + "\n")
print(counts, len(pairs))
