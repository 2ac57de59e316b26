"""SFT data of the refusal-dose experiment in docs/alignment.md ("Tried afterwards: more refusals in SFT"): the records
it trained on (their order differs: the shuffle before it now sees other records).

    python experiments/alignment_smollm2/sft_mix/make_sft_data.py 30 runs/sftmix30/sft.jsonl [--no-general]

The experiment started from the earlier preset's `sft` part (15 MedSafetyBench refusals per training category, 40
PubMedQA items, 36 benign medical answers) and added N − 15 more refusals per training category, taken after the 30
that part and the `prompts` part then used, plus HEAL's 80 general benign answers
(heal/data/builtin/benign_general_answers.csv) — or, with --no-general, the 36 benign medical answers a second time.
The preset now takes 30 refusals per category and the general answers itself (`heal prep --dataset alignment
--records sft`), as the first 30 of each category. Run from the repository root with ../shared/data present.
"""

import json
import random
import sys
from pathlib import Path

from heal.data import alignment

ROOT, HELD_OUT, SEED, FIRST = Path("../shared/data"), {7, 8, 9}, 0, 15


def main(n: int, output: Path, general: bool) -> None:
    records = [r for r in alignment._sft(ROOT, HELD_OUT, 0, SEED, "sft")
               if r["source"] != "heal_benign_general"]
    by_category = alignment._medsafety_by_category(ROOT, SEED)
    records = [r for r in records if r["source"] != "medsafetybench"]
    records += [r for c, items in by_category.items() if c not in HELD_OUT
                for r in items[:FIRST] + items[2 * FIRST:2 * FIRST + n - FIRST]]
    records += alignment._benign_general_answers() if general else alignment._benign_answers()
    random.Random(f"{SEED}-sftmix{n}").shuffle(records)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(json.dumps(r) + "\n" for r in records))
    print(f"{len(records)} records → {output}")


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), "--no-general" not in sys.argv)
