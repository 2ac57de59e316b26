"""The RLHF arm with a monitor that can see over-refusal: the files (session 14; README.md beside this file).

    python experiments/alignment_smollm2/monitor_benign/make_files.py RUN_DIR OUT_DIR

RUN_DIR is a finished run of the alignment preset. Writes OUT_DIR/train.jsonl, the RL prompts PPO trains on in the
preset (its own seeded 85/15 split of RUN_DIR/data/prompts.jsonl, so training is unchanged), and
OUT_DIR/monitor.jsonl: the preset's 32 monitor prompts plus the 90 risky-sounding benign requests written in session 11
(../rl_unseen_prompts/benign_general_prompts.csv), labelled safe. Despite that file's folder name, all 90 are SFT
training prompts since session 12 (benign_general_answers.csv), and 22 are also among the prompts PPO trains on.
"""

import csv
import json
import sys
from pathlib import Path

from heal.data.splits import split_eval
from heal.rl.prompts import load_prompts

HERE = Path(__file__).resolve().parent
SPLIT, SEED = 0.15, 0  # the preset's ppo eval_split_size and seed


def main(run_dir: Path, out: Path) -> None:
    train, held = split_eval(load_prompts(str(run_dir / "data" / "prompts.jsonl")), SPLIT, SEED)
    with open(HERE.parent / "rl_unseen_prompts" / "benign_general_prompts.csv", newline="", encoding="utf-8") as f:
        unseen = [{"id": f"unseen-benign-{i}", "task": "safety", "source": "heal_written_unseen",
                   "prompt": row["prompt"], "category": row["category"], "label": "safe"}
                  for i, row in enumerate(csv.DictReader(f))]
    out.mkdir(parents=True, exist_ok=True)
    for name, records in (("train", train), ("monitor", held + unseen)):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        print(f"{out / name}.jsonl: {len(records)} prompts")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
