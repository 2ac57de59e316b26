"""ACI-Bench (Yim et al., Scientific Data 2023): doctor–patient visit dialogue → clinical visit note.

    heal prep --dataset aci_bench --input_path ../shared/data/clinical_notes/aci_bench/train.csv --output_path aci.jsonl

Input: a CSV with `dialogue` and `note` (ACI-Bench also has `dataset` and `encounter_id`). When a
`<name>_metadata.csv` sits beside it, its chief complaint and patient age/gender are joined on encounter_id.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from heal.data.io import read_records, require_columns
from heal.data.mimic import normalise_whitespace

PROMPT_TEMPLATE = "Write the clinical visit note for this doctor-patient conversation.\n\n{dialogue}\n\nClinical note:"
METADATA_COLUMNS = ("cc", "patient_age", "patient_gender")


def _metadata(path: Path) -> dict[str, dict]:
    name = path.name.removesuffix(".csv.gz").removesuffix(".csv")
    meta_file = path.with_name(f"{name}_metadata.csv")
    if not meta_file.exists():
        return {}
    return {r["encounter_id"]: r for r in read_records(meta_file) if "encounter_id" in r}


def prepare(input_path: str | Path) -> tuple[list[dict], dict]:
    path = Path(input_path)
    rows = read_records(path)
    require_columns(rows, ("dialogue", "note"), path, "expected ACI-Bench columns dataset, encounter_id, dialogue, note")
    metadata = _metadata(path)
    drops: Counter = Counter()
    records = []
    for i, row in enumerate(rows):
        dialogue, note = normalise_whitespace(row["dialogue"] or ""), (row["note"] or "").strip()
        if not dialogue or not note:
            drops["empty_dialogue_or_note"] += 1
            continue
        encounter = str(row.get("encounter_id") or f"row{i}")
        record = {
            "id": f"{row.get('dataset') or 'aci'}-{encounter}",
            "task": "aci",
            "source": "aci_bench",
            "subset": row.get("dataset", ""),
            "input": dialogue,
            "prompt": PROMPT_TEMPLATE.format(dialogue=dialogue),
            "completion": note,
            "reference": note,
        }
        record.update({c: str(metadata.get(encounter, {}).get(c, "")) for c in METADATA_COLUMNS})
        records.append(record)
    return records, {"read": len(rows), "kept": len(records), "dropped": dict(drops)}
