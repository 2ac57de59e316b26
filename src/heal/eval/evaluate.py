"""`heal eval`: task metrics of a model on processed records — PubMedQA accuracy/macro-F1, summary ROUGE, robustness.

    heal eval --model_path models/policy_model/pubmedqa_sft --dataset_path data/processed/pubmedqa_fold0_dev.csv
    heal eval --model_path heal-tiny --dataset_path pqa_dev.csv --robustness --output_dir experiments/results/tiny
    heal eval --model_path models/policy_model/aci_sft --dataset_path aci_valid.jsonl --max_new_tokens 512
    python src/evaluation/evaluate.py --model_path … --dataset_path …          # the seed's command, same flags

The results folder (default experiments/results/eval-<model>-<data>, or --output_dir) receives metrics.json
(machine), report.md (human), PNG plots (confusion matrices, robustness, ROUGE/lengths), predictions.jsonl (one row
per item) and resolved_config.yaml; all appear together when the run finishes, none if it fails. docs/eval.md
explains every metric.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from heal import __version__
from heal.config import make_parser as _make_parser
from heal.data.schema import PUBMEDQA_LABELS
from heal.errors import HealError
from heal import results
from heal.contracts import VerbContract
from heal.eval import report as eval_report
from heal.eval.config import EvalConfig, GenerationArgs
from heal.models.tiny import TinyConfig

SUMMARY_TASKS = ("mimic_bhc", "mimic_di", "aci")
TASK_ALIASES = {"mimic": "mimic", "mimic_bhc": "mimic_bhc", "mimic_di": "mimic_di", "aci": "aci", "aci_bench": "aci",
                "pubmedqa": "pubmedqa"}
DEFAULT_MAX_NEW_TOKENS = {"pubmedqa": 64, "summary": 256}


CONTRACT = VerbContract(output="folder", inputs=("dataset_path",), models=("model_path",),
                        summarize=eval_report.summarize)


def make_parser():
    return _make_parser("heal eval", __doc__.split("\n")[0], EvalConfig, GenerationArgs, TinyConfig)


# --- data ------------------------------------------------------------------------------------------------------------

def _read(config: EvalConfig) -> list[dict]:
    from heal.data.io import read_records

    if not config.dataset_path:
        raise HealError("--dataset_path is required: processed records from `heal prep` (.csv, .jsonl, .parquet)")
    path = Path(config.dataset_path)
    if not path.is_file():
        raise HealError(f"{path}: dataset file not found; check --dataset_path (a file written by `heal prep`)")
    records = read_records(path)
    if not records:
        raise HealError(f"{path}: no records; run `heal prep` to produce evaluation records")
    return records


def detect_task(records: list[dict], config: EvalConfig) -> str:
    """'pubmedqa' or 'summary', from --dataset or the records' task/label columns."""
    path = config.dataset_path
    if config.dataset != "auto":
        return "pubmedqa" if config.dataset == "pubmedqa" else "summary"
    tasks = {str(r.get("task", "")).strip() for r in records} - {""}
    if tasks == {"pubmedqa"}:
        return "pubmedqa"
    if tasks and tasks <= set(SUMMARY_TASKS):
        return "summary"
    if tasks:
        raise HealError(f"{path}: task column holds {', '.join(sorted(tasks))}; eval handles pubmedqa, "
                        f"{', '.join(SUMMARY_TASKS)} (pass --dataset to choose)")
    labels = {str(r.get("label", "")).strip().lower() for r in records}
    if "label" in records[0] and labels <= set(PUBMEDQA_LABELS):
        return "pubmedqa"
    if "reference" in records[0] or "completion" in records[0]:
        return "summary"
    raise HealError(f"{path}: cannot tell the task (no task column; found: {', '.join(sorted(records[0]))}); "
                    "pass --dataset pubmedqa|mimic|aci")


def check_records(records: list[dict], task: str, config: EvalConfig) -> None:
    from heal.data.io import require_columns

    path = config.dataset_path
    if task == "pubmedqa":
        needed = ["prompt", "label"] + (["question", "context"] if config.robustness else [])
        require_columns(records, needed, path, "PubMedQA eval needs records from `heal prep --dataset pubmedqa`"
                        + (" (--robustness needs question and context)" if config.robustness else ""))
        for i, record in enumerate(records):
            if str(record["label"]).strip().lower() not in PUBMEDQA_LABELS:
                raise HealError(f"{path}: row {i + 1} has label {record['label']!r}; expected yes, no or maybe "
                                "(unlabelled PQA-U items cannot be scored)")
        return
    require_columns(records, ["prompt"], path, "summary eval needs prompt and reference columns")
    if not any(c in records[0] for c in ("reference", "completion")):
        raise HealError(f"{path}: missing column reference (found: {', '.join(sorted(records[0]))}); summary eval "
                        "compares generations with the reference summary")


def load_records(config: EvalConfig) -> tuple[list[dict], str]:
    records = _read(config)
    task = detect_task(records, config)
    check_records(records, task, config)
    if config.max_samples is not None:
        if config.max_samples < 1:
            raise HealError(f"--max_samples {config.max_samples}: must be at least 1")
        records = records[: config.max_samples]
    return records, task


# --- run -------------------------------------------------------------------------------------------------------------

def _pubmedqa(backend, records: list[dict], config: EvalConfig, generation: GenerationArgs, tokens: int) -> dict:
    from heal.eval import qa

    modes = config.modes()
    needed = list(dict.fromkeys(modes + ([config.robustness_mode] if config.robustness else [])))
    result = qa.evaluate(backend, records, needed, tokens, generation.temperature, generation.top_p)
    if config.robustness:
        clean = result["predictions"][config.robustness_mode]
        result["robustness"] = qa.robustness(backend, records, clean, config.robustness_mode,
                                             config.perturbation_names(), tokens, generation.seed,
                                             generation.temperature)
        result["metrics"].update(result["robustness"]["metrics"])
        for item_index, item in enumerate(result["items"]):
            for name, preds in result["robustness"]["predictions"].items():
                item[f"robustness/{name}/prediction"] = preds[item_index] or "none"
    return result


def _summaries(backend, records: list[dict], config: EvalConfig, generation: GenerationArgs, tokens: int) -> dict:
    from heal.eval import summarization

    tasks = sorted({str(r.get("task") or "") for r in records} - {""})
    task = TASK_ALIASES.get(config.dataset, None) if config.dataset != "auto" else ",".join(tasks) or "summary"
    result = summarization.evaluate(backend, records, task, tokens, generation.temperature, generation.top_p,
                                    config.embedding_model, config.bertscore_model, config.bertscore_layer)
    if len(tasks) > 1:  # e.g. BHC and DI from one `heal prep --target both` file: report each as well
        for name in tasks:
            index = [i for i, r in enumerate(records) if r.get("task") == name]
            flat, _ = summarization.score([result["predictions"][i] for i in index],
                                          [result["references"][i] for i in index], name)
            result["metrics"].update({k.replace("summary/", f"summary/{name}/", 1): v for k, v in flat.items()
                                      if not k.endswith("/task")})
    return result


def main(config: EvalConfig, generation: GenerationArgs, tiny: TinyConfig | None = None) -> dict:
    from heal.data.schema import is_credentialed
    from heal.models.generate import check_model_path, load_backend

    generation.check()
    config.modes()
    if config.robustness:
        config.perturbation_names()
    check_model_path(generation.model_path)
    records, task = load_records(config)
    folder = results.check_output_dir(config.output_dir or results.default_output_dir(
        "eval", generation.model_path, config.dataset_path, config.run_name))
    tokens = generation.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[task]
    corpus = [str(r.get("prompt", "")) + "\n" + str(r.get("reference") or r.get("completion") or "") for r in records]
    started = time.perf_counter()
    backend = load_backend(generation.model_path, generation.batch_size, generation.system_prompt,
                           generation.backend, corpus, tiny, generation.seed, generation.progress)
    run = (_pubmedqa if task == "pubmedqa" else _summaries)(backend, records, config, generation, tokens)
    info = {"heal_version": __version__, "stage": "eval", "task": task, "model_path": generation.model_path,
            "dataset_path": str(config.dataset_path), "n": len(records), "backend": backend.name,
            "max_new_tokens": tokens, "truncated_prompts": backend.truncated,
            "credentialed": is_credentialed(records, config.dataset_path),
            "seconds": round(time.perf_counter() - started, 2),
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _write(folder, task, run, info, config, generation, tiny)
    _print_summary(folder, task, run["metrics"])
    return {**info, "metrics": run["metrics"], "output_dir": str(folder)}


# --- outputs ---------------------------------------------------------------------------------------------------------

def _write(folder: Path, task: str, run: dict, info: dict, *configs) -> None:

    with results.ResultsFolder(folder) as out:
        out.config(*[c for c in configs if c is not None])
        out.jsonl("predictions.jsonl", run["items"])
        if task == "pubmedqa":
            eval_report.write_pubmedqa(out, run, info)
        else:
            eval_report.write_summaries(out, run, info)


def _print_summary(folder: Path, task: str, flat: dict) -> None:
    shown = {k: v for k, v in flat.items() if isinstance(v, float) and not k.startswith("robustness/") and
             not k.split("/")[-1] in ("n", "min", "max", "median")}
    print(f"heal eval {task}: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items()))
    print(f"  results: {folder} (metrics.json, report.md, predictions.jsonl, *.png)")


if __name__ == "__main__":
    from heal.cli import run

    sys.exit(run(["eval", *sys.argv[1:]]))
