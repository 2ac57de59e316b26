"""PubMedQA (Jin et al., EMNLP 2019): the `ori_pqal.json` schema → question-answering records.

    heal prep --dataset pubmedqa --input_path ../shared/data/pubmedqa/ori_pqal_trainval.json \
        --fold 0 --part train --output_path pubmedqa_fold0_train.csv

The input is a JSON object keyed by PMID; each item has QUESTION, CONTEXTS (abstract sections without the
conclusion), LABELS (the section names), LONG_ANSWER (the conclusion) and, when labelled (PQA-L),
final_decision ∈ {yes, no, maybe}. Unlabelled items (PQA-U) become prompt-only records.

Splits: the official 10-fold cross-validation file lists 50 dev PMIDs per fold over the 500 train/validation
items; a fold's train part is the other 450. PMIDs in no fold are the official test set (`--part test`); they are
never part of a train or dev split.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from heal.data.io import check_input_path
from heal.data.schema import PUBMEDQA_LABELS
from heal.errors import HealError

PROMPT_TEMPLATE = "Question: {question}\n\nContext:\n{context}\n\nAnswer yes, no or maybe, then explain."
DEFAULT_FOLDS_NAME = "pqal_cv_folds.json"
PARTS = ("train", "dev", "test")


def format_context(contexts: list[str], labels: list[str] | None) -> str:
    """Join abstract sections as 'LABEL: text' lines (unlabelled sections stand alone)."""
    labels = labels or []
    lines = []
    for i, text in enumerate(contexts):
        label = labels[i].strip() if i < len(labels) and labels[i] else ""
        lines.append(f"{label}: {text.strip()}" if label else text.strip())
    return "\n".join(lines)


def format_prompt(question: str, context: str) -> str:
    return PROMPT_TEMPLATE.format(question=question.strip(), context=context)


def format_completion(label: str, long_answer: str) -> str:
    """The decision comes first, so a parser (and a verifiable reward) can read it from the first word."""
    answer = f"{label.capitalize()}."
    return f"{answer} {long_answer.strip()}" if long_answer and long_answer.strip() else answer


_DECISION = re.compile(r"\b(yes|no|maybe)\b", re.IGNORECASE)


def parse_decision(text: str) -> str | None:
    """The first yes/no/maybe in a generated answer (after an optional 'Answer:' prefix), or None."""
    text = re.sub(r"^\s*(final\s+)?answer\s*:\s*", "", text or "", flags=re.IGNORECASE)
    match = _DECISION.search(text)
    return match.group(1).lower() if match else None


def load_pqal(path: str | Path) -> dict[str, dict]:
    """Read and validate an ori_pqal.json-style file; errors name the PMID and field."""
    path = check_input_path(path, "PubMedQA JSON")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise HealError(f"{path}: not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise HealError(f"{path}: invalid JSON at line {e.lineno} ({e.msg}); expected the ori_pqal.json schema") from None
    if not isinstance(data, dict) or not data:
        raise HealError(f"{path}: expected a non-empty JSON object keyed by PMID (the ori_pqal.json schema)")
    labelled = None
    for pmid, item in data.items():
        _check_item(path, pmid, item)
        has_label = "final_decision" in item
        if labelled is None:
            labelled = has_label
        elif has_label != labelled:
            raise HealError(f"{path}: PMID {pmid}: some items have final_decision and some do not; "
                            "split labelled (PQA-L) and unlabelled (PQA-U) items into separate files")
    return data


def _check_item(path: Path, pmid: str, item: object) -> None:
    where = f"{path}: PMID {pmid}"
    if not isinstance(item, dict):
        raise HealError(f"{where}: expected an object with QUESTION and CONTEXTS (the ori_pqal.json schema)")
    question = item.get("QUESTION")
    if not isinstance(question, str) or not question.strip():
        raise HealError(f"{where}: missing or empty field QUESTION")
    contexts = item.get("CONTEXTS")
    if not isinstance(contexts, list) or not contexts or not all(isinstance(c, str) for c in contexts):
        raise HealError(f"{where}: field CONTEXTS must be a non-empty list of strings")
    labels = item.get("LABELS", [])
    if not isinstance(labels, list) or (labels and len(labels) != len(contexts)):
        raise HealError(f"{where}: field LABELS must be a list as long as CONTEXTS")
    if "final_decision" in item and item["final_decision"] not in PUBMEDQA_LABELS:
        raise HealError(f"{where}: final_decision is {item['final_decision']!r}; expected one of yes, no, maybe")


def to_record(pmid: str, item: dict) -> dict:
    """One PubMedQA item → a record (SFT-ready when labelled, prompt-only when not)."""
    context = format_context(item["CONTEXTS"], item.get("LABELS"))
    long_answer = (item.get("LONG_ANSWER") or "").strip()
    record = {
        "id": str(pmid),
        "task": "pubmedqa",
        "source": "pubmedqa",
        "question": item["QUESTION"].strip(),
        "context": context,
        "long_answer": long_answer,
        "prompt": format_prompt(item["QUESTION"], context),
    }
    if "final_decision" in item:
        label = item["final_decision"]
        record["completion"] = format_completion(label, long_answer)
        record["reference"] = record["completion"]
        record["label"] = label
    return record


def load_folds(path: str | Path) -> dict[str, list[str]]:
    """The official CV folds: {'fold0': [dev PMIDs], ...} from {'folds': {'fold0': {'dev': [...]}}}."""
    path = check_input_path(path, "PubMedQA folds")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        folds = {name: [str(p) for p in fold["dev"]] for name, fold in data["folds"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise HealError(f"{path}: expected {{\"folds\": {{\"fold0\": {{\"dev\": [PMIDs]}}, ...}}}}") from None
    if not folds:
        raise HealError(f"{path}: lists no folds")
    return folds


def select_split(pmids: list[str], folds: dict[str, list[str]], fold: int | None, part: str | None) -> list[str]:
    """PMIDs of one part of the official split, in input order. Test = PMIDs that are in no fold."""
    in_folds = {p for dev in folds.values() for p in dev}
    if part == "test":
        return [p for p in pmids if p not in in_folds]
    name = f"fold{fold}"
    if name not in folds:
        raise HealError(f"--fold {fold}: the folds file has {', '.join(sorted(folds))}; pick one of those numbers")
    dev = set(folds[name])
    if part == "dev":
        return [p for p in pmids if p in dev]
    return [p for p in pmids if p in in_folds and p not in dev]


def prepare(input_path: str | Path, fold: int | None = None, part: str | None = None,
            folds_path: str | Path | None = None) -> tuple[list[dict], dict]:
    """Records for the requested split, and a summary of what was read and kept."""
    if part is not None and part not in PARTS:
        raise HealError(f"--part {part}: choose one of {', '.join(PARTS)}")
    if fold is not None and part is None:
        part = "train"
    if fold is None and part in ("train", "dev"):
        raise HealError(f"--part {part} needs --fold K (0-9) to say which official CV fold")
    data = load_pqal(input_path)
    pmids = list(data)
    if part is not None:
        folds_file = Path(folds_path) if folds_path else Path(input_path).with_name(DEFAULT_FOLDS_NAME)
        if not folds_file.exists():
            raise HealError(f"{folds_file}: CV folds file not found; pass --folds_path "
                            "(e.g. ../shared/data/pubmedqa/pqal_cv_folds.json)")
        pmids = select_split(pmids, load_folds(folds_file), fold, part)
    records = [to_record(pmid, data[pmid]) for pmid in pmids]
    summary = {
        "read": len(data),
        "kept": len(records),
        "split": {"fold": fold, "part": part},
        "labels": dict(Counter(r["label"] for r in records if "label" in r)),
        "labelled": "final_decision" in next(iter(data.values())),
    }
    return records, summary
