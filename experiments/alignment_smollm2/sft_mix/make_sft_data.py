"""SFT data for the refusal-dose experiment in docs/alignment.md ("Tried afterwards: more refusals in SFT").

    python experiments/alignment_smollm2/sft_mix/make_sft_data.py 30 runs/sftmix30/sft.jsonl [--no-general]

The preset's `sft` part (15 MedSafetyBench refusals per training category, 40 PubMedQA items, 36 benign medical
answers) plus N − 15 more refusals per training category, taken after the 30 the preset's `sft` and `prompts` parts
use (so the RL prompts stay unseen), plus the 80 general benign requests with written answers in this folder
(benign_general_answers.csv: everyday requests that use words such as kill, shoot or attack harmlessly, written for
HEAL, not taken from XSTest) — or, with --no-general, the 36 benign medical answers a second time. Run from the repository root with ../shared/data present.
"""

import json
import random
import sys
from pathlib import Path

from heal.data import alignment
from heal.data.io import read_records

HERE = Path(__file__).parent
ROOT, HELD_OUT, SEED = Path("../shared/data"), {7, 8, 9}, 0


def main(n: int, output: Path, general: bool) -> None:
    records = alignment._sft(ROOT, HELD_OUT, 0, SEED, "sft")
    by_category = alignment._medsafety_by_category(ROOT, SEED)
    start = 2 * alignment.SIZES["sft_refusals_per_category"]  # after the preset's sft and prompts slices
    records += [r for c, items in by_category.items() if c not in HELD_OUT for r in items[start:start + n - 15]]
    if general:
        records += [{"id": f"general-{i}", "task": "safety", "source": "heal_benign_general", "prompt": r["prompt"],
                     "completion": r["response"], "reference": r["response"], "category": r["category"],
                     "label": "safe"} for i, r in enumerate(read_records(HERE / "benign_general_answers.csv"))]
    else:  # the first try: the 36 benign medical answers a second time instead
        records += alignment._benign_answers()
    random.Random(f"{SEED}-sftmix{n}").shuffle(records)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(json.dumps(r) + "\n" for r in records))
    print(f"{len(records)} records → {output}")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), "--no-general" not in sys.argv)
