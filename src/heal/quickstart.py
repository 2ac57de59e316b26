"""`heal quickstart`: the pipeline on built-in data, offline on a CPU.

    heal quickstart --output_dir runs/quickstart

Today it runs the data stage: built-in synthetic PubMedQA-style items and MIMIC-style discharge notes are generated
and prepared into training records. Chaining SFT, reward, PPO and evaluation here is the end-to-end issue's work.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from heal.config import make_parser as _make_parser
from heal.config import save_resolved_config


@dataclass
class QuickstartConfig:
    output_dir: str = field(default="runs/quickstart", metadata={"help": "Run folder for every stage's outputs."})
    n_pubmedqa: int = field(default=300, metadata={"help": "Synthetic PubMedQA-style items to generate."})
    n_notes: int = field(default=100, metadata={"help": "Synthetic discharge notes to generate."})
    seed: int = field(default=0, metadata={"help": "Random seed for the built-in data."})


def make_parser():
    return _make_parser("heal quickstart", __doc__.split("\n")[0], QuickstartConfig)


def main(config: QuickstartConfig) -> None:
    from heal.data import prep

    run = Path(config.output_dir)
    (run / "data").mkdir(parents=True, exist_ok=True)
    save_resolved_config(run / "config.yaml", config)
    steps = [
        ["--dataset", "synthetic_pubmedqa", "--n", str(config.n_pubmedqa), "--seed", str(config.seed),
         "--output_path", str(run / "data/pqal.json"), "--folds_path", str(run / "data/pqal_folds.json")],
        ["--dataset", "pubmedqa", "--input_path", str(run / "data/pqal.json"), "--folds_path",
         str(run / "data/pqal_folds.json"), "--fold", "0", "--part", "train",
         "--output_path", str(run / "data/pubmedqa_train.jsonl")],
        ["--dataset", "pubmedqa", "--input_path", str(run / "data/pqal.json"), "--folds_path",
         str(run / "data/pqal_folds.json"), "--fold", "0", "--part", "dev",
         "--output_path", str(run / "data/pubmedqa_dev.jsonl")],
        ["--dataset", "synthetic_mimic", "--n", str(config.n_notes), "--seed", str(config.seed),
         "--output_path", str(run / "data/discharge.csv.gz")],
        ["--dataset", "mimic", "--input_path", str(run / "data/discharge.csv.gz"), "--progress", "false",
         "--output_path", str(run / "data/mimic_summaries.jsonl")],
    ]
    for argv in steps:
        (prep_config,) = prep.make_parser().parse(argv)
        prep.main(prep_config)
    print(f"\nheal quickstart: data ready in {run}/data. The model stages (sft, reward, ppo, eval) exist as verbs "
          "but are not yet chained here; see the README for running them one by one.")


if __name__ == "__main__":
    from heal.cli import run as _run

    sys.exit(_run(["quickstart", *sys.argv[1:]]))
