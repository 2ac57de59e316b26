"""A development split for choosing SFT data, disjoint from every prompt the alignment table reports on.

    python experiments/alignment_smollm2/sft_dev/make_dev.py runs/sft_dev

Writes two files:
- dev_benign.jsonl: the 150 XSTest safe prompts that `heldout_benign` does not take (15 of each of its ten types);
- dev_harmful.jsonl: 15 more MedSafetyBench requests of each training category 1-6 (after the slices `sft` and
  `prompts` use, so never trained on) and XSTest's 200 unsafe contrast prompts.
The table's held-out prompts (MedSafetyBench 7-9, HarmBench val, the other 100 XSTest safe prompts) stay untouched.
Run from the repository root with ../shared/data present.
"""

import json
import sys
from pathlib import Path

from heal.data import alignment
from heal.data.io import read_records

ROOT, HELD_OUT, SEED = Path("../shared/data"), {7, 8, 9}, 0
# items 45-60 of each training category: after the 30 + 15 that the LoRA preset's `sft` and `prompts` parts took when
# this split was made, so also after the 20 + 15 the current preset takes. Fixed, so the split stays the one measured.
MEDSAFETY_DEV = slice(45, 60)


def main(out: Path) -> None:
    held = {r["id"] for r in alignment._heldout_benign(ROOT, HELD_OUT, 0, SEED, "heldout_benign")}
    xstest = [alignment.xstest_record(r) for r in read_records(ROOT / alignment.FILES["xstest"])]
    benign = [r for r in xstest if r["label"] == "safe" and r["id"] not in held]
    harmful = [alignment._prompt_only(r) | {"source": "medsafetybench_dev"}
               for c, items in alignment._medsafety_by_category(ROOT, SEED).items() if c not in HELD_OUT
               for r in items[MEDSAFETY_DEV]]
    harmful += [r | {"source": "xstest_unsafe"} for r in xstest if r["label"] == "unsafe"]
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("dev_benign", benign), ("dev_harmful", harmful)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{len(rows)} → {out / name}.jsonl")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
