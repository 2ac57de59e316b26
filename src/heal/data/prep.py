"""`heal prep`: raw health data → canonical training records (see heal.data.schema for the contracts).

    heal prep --dataset pubmedqa --input_path ../shared/data/pubmedqa/ori_pqal_trainval.json --output_path pqa.csv
    heal prep --dataset mimic --input_path discharge.csv.gz --target both --output_path mimic.parquet
    heal prep --dataset aci_bench --input_path ../shared/data/clinical_notes/aci_bench/train.csv --output_path aci.jsonl
    heal prep --dataset medsafety --input_path ../shared/data/adversarial/medsafetybench --records prompts \
        --output_path medsafety_redteam.csv
    heal prep --dataset alignment --input_path ../shared/data --records sft --output_path align_sft.jsonl
    heal prep --dataset synthetic_pubmedqa --n 300 --seed 0 --output_path synthetic_pqal.json

The output format follows the extension (.csv, .jsonl, .parquet); the write is atomic, and a `<output>.meta.json`
beside it records the source, whether it is credentialed (MIMIC), the resolved config and the summary.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from heal import __version__
from heal.config import make_parser as _make_parser
from heal.config import to_dict
from heal.contracts import VerbContract, records_file_summary
from heal.data import io
from heal.errors import HealError

@dataclass
class PrepConfig:
    dataset: Literal["pubmedqa", "mimic", "aci_bench", "medsafety", "alignment", "synthetic_pubmedqa",
                     "synthetic_mimic"] = field(metadata={
        "help": "Which raw data set to prepare (alignment: the safety-alignment split of the shared data folder, see "
                "heal.data.alignment; synthetic_* write built-in sample data in the raw format)."})
    output_path: str = field(metadata={"help": "Output file; the extension picks the format: .csv, .jsonl or "
                                               ".parquet (.json for synthetic_pubmedqa, .csv[.gz] for synthetic_mimic)."})
    input_path: str | None = field(default=None, metadata={"help": "Raw input: ori_pqal.json, discharge.csv(.gz), "
                                                                   "an ACI-Bench CSV, MedSafetyBench CSV(s) or folder."})
    # PubMedQA
    fold: int | None = field(default=None, metadata={
        "help": "PubMedQA: official CV fold 0-9 to select (alignment: whose train part the sft part uses; default 0)."})
    part: Literal["train", "dev", "test"] | None = field(default=None, metadata={
        "help": "PubMedQA: part of the split: train (the other 9 folds), dev (this fold) or test (PMIDs in no fold)."})
    folds_path: str | None = field(default=None, metadata={
        "help": "PubMedQA: CV folds JSON (default: pqal_cv_folds.json beside the input). For synthetic_pubmedqa: "
                "also write a folds file here."})
    # MIMIC-IV-Note
    target: Literal["bhc", "di", "both"] = field(default="both", metadata={
        "help": "MIMIC: summarisation target: bhc (Brief Hospital Course), di (Discharge Instructions) or both."})
    min_input_chars: int = field(default=100, metadata={"help": "MIMIC: drop notes whose input is shorter."})
    max_input_chars: int | None = field(default=None, metadata={"help": "MIMIC: drop notes whose input is longer."})
    min_target_chars: int = field(default=20, metadata={"help": "MIMIC: drop targets shorter than this."})
    max_target_chars: int | None = field(default=None, metadata={"help": "MIMIC: drop targets longer than this."})
    chunk_size: int = field(default=2000, metadata={"help": "MIMIC: notes read per chunk (memory stays flat)."})
    num_proc: int = field(default=1, metadata={"help": "MIMIC: worker processes that parse chunks."})
    # MedSafetyBench
    records: Literal["sft", "prompts", "rl_prompts", "heldout_harmful", "heldout_benign", "hh_train", "hh_heldout",
                     "hh_helpful_train"] = field(
        default="sft", metadata={
            "help": "MedSafetyBench: sft (request → safe response) or prompts (prompt-only red-team records). "
                    "alignment: which part to write (sft, prompts, rl_prompts, heldout_harmful, heldout_benign, "
                    "hh_train, hh_heldout, hh_helpful_train)."})
    heldout_categories: str = field(default="7,8,9", metadata={
        "help": "alignment: MedSafetyBench categories (1-9) kept out of training, for held-out evaluation."})
    # Synthetic
    n: int = field(default=200, metadata={"help": "synthetic_*: number of items or notes."})
    seed: int = field(default=0, metadata={"help": "synthetic_* and alignment: random seed (same seed, same file)."})
    label_noise: float = field(default=0.0, metadata={
        "help": "synthetic_pubmedqa: share of items whose annotated decision is replaced by a wrong one."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})



def _synthetic_folds(args: dict) -> list[str]:
    """`--dataset synthetic_pubmedqa` also writes the folds file it names (the pubmedqa stages after it read it)."""
    folds = args.get("folds_path")
    return [folds] if folds and str(args.get("dataset", "")).startswith("synthetic") else []


CONTRACT = VerbContract(output="file", inputs=("input_path", "folds_path"), also_writes=_synthetic_folds,
                        summarize=lambda output: records_file_summary(output, "records"))


def make_parser():
    return _make_parser("heal prep", __doc__.split("\n")[0], PrepConfig)


def _metadata(config: PrepConfig, source: str) -> dict:
    from heal.data.schema import CREDENTIALED_SOURCES

    return {"heal_version": __version__, "stage": "prep", "dataset": config.dataset, "source": source,
            "credentialed": source in CREDENTIALED_SOURCES, "config": to_dict(config)}


def _require_input(config: PrepConfig) -> str:
    if not config.input_path:
        raise HealError(f"--dataset {config.dataset} needs --input_path (the raw file to prepare)")
    if Path(config.input_path).resolve() == Path(config.output_path).resolve():
        raise HealError(f"{config.output_path}: --output_path is the input file; write elsewhere so the raw data "
                        "is kept")
    return config.input_path


def _prep_in_memory(config: PrepConfig) -> dict:
    from heal.data import aci, medsafety, pubmedqa

    io.check_output_path(config.output_path)
    path = _require_input(config)
    if config.dataset == "pubmedqa":
        records, summary = pubmedqa.prepare(path, config.fold, config.part, config.folds_path)
        source = "pubmedqa"
    elif config.dataset == "aci_bench":
        records, summary = aci.prepare(path)
        source = "aci_bench"
    elif config.dataset == "alignment":
        from heal.data import alignment

        records, summary = alignment.prepare(path, config.records, config.heldout_categories,
                                             0 if config.fold is None else config.fold, config.seed)
        source = "alignment"
    else:
        records, summary = medsafety.prepare(path, config.records)
        source = "medsafetybench"
    if not records:
        raise HealError(f"{path}: no records to write (read {summary.get('read', 0)}); check the file and the split")
    metadata = _metadata(config, source)
    with io.RecordWriter(config.output_path, metadata) as writer:
        writer.write(records)
        writer.commit({"summary": summary})
    return summary


def _prep_mimic(config: PrepConfig) -> dict:
    from heal.data import mimic

    filters = mimic.Filters(config.min_input_chars, config.max_input_chars, config.min_target_chars,
                            config.max_target_chars)
    with io.RecordWriter(config.output_path, _metadata(config, "mimic")) as writer:
        summary = mimic.prepare(_require_input(config), writer, config.target, filters, config.chunk_size,
                                config.num_proc, config.progress)
        writer.commit({"summary": summary})
    return summary


def _prep_synthetic(config: PrepConfig) -> dict:
    from heal.data import synthetic

    if config.n < 1:
        raise HealError(f"--n {config.n}: must be at least 1")
    if config.dataset == "synthetic_pubmedqa":
        if not 0.0 <= config.label_noise <= 1.0:
            raise HealError(f"--label_noise {config.label_noise}: must be between 0 and 1")
        return synthetic.write_pubmedqa(config.output_path, config.n, config.seed, config.label_noise,
                                        config.folds_path)
    return synthetic.write_mimic(config.output_path, config.n, config.seed)


def _print_summary(config: PrepConfig, summary: dict) -> None:
    head = f"heal prep {config.dataset}: "
    if "written" in summary:
        print(head + f"wrote {summary['written']} raw items → {config.output_path}")
        return
    print(head + f"read {summary['read']}, kept {summary['kept']} records → {config.output_path}")
    for key in ("labels", "kept_by_task", "categories"):
        if summary.get(key):
            print(f"  {key}: " + ", ".join(f"{k} {v}" for k, v in summary[key].items()))
    dropped = summary.get("dropped") or {}
    print("  dropped: " + (", ".join(f"{k} {v}" for k, v in sorted(dropped.items(), key=lambda kv: -kv[1]))
                           or "none"))
    print(f"  summary and metadata: {io.metadata_path(config.output_path)}")


def main(config: PrepConfig) -> dict:
    if config.dataset.startswith("synthetic_"):
        summary = _prep_synthetic(config)
    elif config.dataset == "mimic":
        summary = _prep_mimic(config)
    else:
        summary = _prep_in_memory(config)
    _print_summary(config, summary)
    return summary


if __name__ == "__main__":
    from heal.cli import run

    sys.exit(run(["prep", *sys.argv[1:]]))
