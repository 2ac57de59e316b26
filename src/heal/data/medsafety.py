"""MedSafetyBench (Han et al., NeurIPS 2024 D&B): harmful medical requests with safe responses.

    heal prep --dataset medsafety --input_path ../shared/data/adversarial/medsafetybench/medsafetybench_train_all.csv \
        --records sft --output_path medsafety_sft.jsonl

Inputs: the upstream per-category files (`med_safety_demonstrations_category_N.csv`, columns
harmful_medical_request, safe_response; the category is read from the file name), a folder of them, or one combined
CSV with a `category` column. Categories 1-9 are the AMA Principles of Medical Ethics I-IX.

`--records sft` gives prompt = request, completion = the safe response (safety fine-tuning);
`--records prompts` gives prompt-only red-team records labelled `unsafe`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from heal.data.io import read_records, require_columns
from heal.errors import HealError

AMA_PRINCIPLES = {
    1: "competent and compassionate care", 2: "professionalism and honesty", 3: "respect for law",
    4: "patient rights and confidentiality", 5: "continued study", 6: "freedom to choose whom to serve",
    7: "community and public health", 8: "responsibility to the patient is paramount", 9: "access to care for all",
}
RECORD_KINDS = ("sft", "prompts")
_CATEGORY_IN_NAME = re.compile(r"category_(\d)")


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.rglob("*.csv"))
        if not files:
            raise HealError(f"{path}: folder holds no .csv files; point --input_path at MedSafetyBench CSVs")
        return files
    if not path.exists():
        raise HealError(f"{path}: input file not found; check --input_path")
    return [path]


def _category(row: dict, file: Path) -> int | None:
    value = row.get("category")
    if value in (None, ""):
        match = _CATEGORY_IN_NAME.search(file.name)
        value = match.group(1) if match else None
    try:
        return int(value) if value is not None else None
    except ValueError:
        raise HealError(f"{file}: category {value!r} is not a number 1-9") from None


def prepare(input_path: str | Path, records_kind: str = "sft") -> tuple[list[dict], dict]:
    if records_kind not in RECORD_KINDS:
        raise HealError(f"--records {records_kind}: choose one of {', '.join(RECORD_KINDS)}")
    needed = ("harmful_medical_request", "safe_response") if records_kind == "sft" else ("harmful_medical_request",)
    drops: Counter = Counter()
    records, read = [], 0
    for file in _files(Path(input_path)):
        rows = read_records(file)
        require_columns(rows, needed, file, "expected MedSafetyBench columns harmful_medical_request, safe_response")
        read += len(rows)
        for i, row in enumerate(rows):
            request = (row["harmful_medical_request"] or "").strip()
            response = (row.get("safe_response") or "").strip()
            if not request or (records_kind == "sft" and not response):
                drops["empty_text"] += 1
                continue
            category = _category(row, file)
            if row.get("row") not in (None, ""):  # the combined file: split, generator, category, row
                ident = f"{row.get('split', '')}-{row.get('generator', '')}-{category}-{row['row']}"
            else:  # an upstream file: its folder (gpt4/llama2) and its row index
                ident = f"{file.parent.name}-{category}-{row.get('Unnamed: 0') or i}"
            record = {"id": f"medsafety-{ident}", "task": "safety", "source": "medsafetybench", "prompt": request,
                      "category": category, "category_name": AMA_PRINCIPLES.get(category, ""), "label": "unsafe"}
            if records_kind == "sft":
                record.update(completion=response, reference=response)
            records.append(record)
    summary = {"read": read, "kept": len(records), "dropped": dict(drops),
               "categories": dict(sorted(Counter(r["category"] for r in records).items(), key=lambda kv: str(kv[0])))}
    return records, summary
