"""SFT records: read a processed file, check it, and split off an eval set.

A file from `heal prep` has `prompt` and `completion` and is used as is. A file without them may still be used when
it has the columns the task's upstream data (or the seed's preprocessing) used; they are turned into prompt and
completion with the same templates `heal prep` uses:

| --dataset | prompt from                                   | completion from                                     |
|-----------|-----------------------------------------------|-----------------------------------------------------|
| pubmedqa  | question (+ context) → PubMedQA template      | final_decision / label / answer (+ long_answer)      |
| mimic     | text / note / input → Discharge Me! template   | summary / target / brief_hospital_course / …        |
| aci       | dialogue / input → ACI-Bench template          | note / target / output                              |
| safety    | harmful_medical_request / goal / input         | safe_response / response / output                   |
| any       | input / instruction / question                 | output / response / target / answer                 |
"""

from __future__ import annotations

from pathlib import Path

from heal.data.io import check_input_path, read_records
from heal.data.schema import SFT_COLUMNS, is_credentialed
from heal.errors import HealError

GENERIC_PROMPT = ("input", "input_text", "instruction", "question", "source")
GENERIC_COMPLETION = ("output", "target", "target_text", "response", "answer")
TASK_COLUMNS = {  # task → (prompt columns, completion columns), tried in order
    "mimic": (("text", "note", "input", "input_text"),
              ("summary", "target", "target_text", "brief_hospital_course", "discharge_instructions", "output")),
    "aci": (("dialogue", "input", "input_text"), ("note", "target", "output")),
    "safety": (("harmful_medical_request", "goal", "behavior", "input", "question"),
               ("safe_response", "response", "output", "answer")),
}
PUBMEDQA_LABEL_COLUMNS = ("final_decision", "label", "answer", "decision")
RECORD_TASKS = {"pubmedqa": {"pubmedqa"}, "mimic": {"mimic_bhc", "mimic_di", "mimic"}, "aci": {"aci"},
                "safety": {"safety"}}


def _first(columns: set[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in columns), None)


def _derive_pubmedqa(record: dict, columns: set[str]) -> dict | None:
    from heal.data import pubmedqa

    label_column = _first(columns, PUBMEDQA_LABEL_COLUMNS)
    if "question" not in columns or label_column is None:
        return None
    context = str(record.get("context") or record.get("contexts") or "")
    decision = pubmedqa.parse_decision(str(record[label_column] or "")) or str(record[label_column] or "")
    return {"prompt": pubmedqa.format_prompt(str(record["question"] or ""), context),
            "completion": pubmedqa.format_completion(decision, str(record.get("long_answer") or ""))}


def _derive(record: dict, columns: set[str], task: str) -> dict | None:
    """{prompt, completion} built from the task's alternative columns, or None if the file has none of them."""
    if task == "pubmedqa":
        derived = _derive_pubmedqa(record, columns)
        if derived:
            return derived
    prompts, completions = TASK_COLUMNS.get(task, ((), ()))
    prompt_column = _first(columns, prompts + GENERIC_PROMPT)
    completion_column = _first(columns, completions + GENERIC_COMPLETION)
    if prompt_column is None or completion_column is None or prompt_column == completion_column:
        return None
    text = str(record[prompt_column] or "")
    if task == "mimic" and prompt_column in ("text", "note"):
        from heal.data.mimic import PROMPTS

        target = "di" if completion_column == "discharge_instructions" else "bhc"
        text = PROMPTS[target].format(note=text)
    elif task == "aci" and prompt_column == "dialogue":
        from heal.data.aci import PROMPT_TEMPLATE

        text = PROMPT_TEMPLATE.format(dialogue=text)
    return {"prompt": text, "completion": str(record[completion_column] or "")}


def to_sft_records(records: list[dict], task: str, path: str | Path) -> list[dict]:
    """Records with string `prompt` and `completion` (derived when the file has the task's other columns)."""
    if not records:
        raise HealError(f"{path}: no records; run `heal prep` to write SFT records (prompt, completion)")
    columns = set(records[0])
    if not set(SFT_COLUMNS) <= columns:
        derived = [_derive(r, columns, task) for r in records[:1]]
        if derived[0] is None:
            raise HealError(
                f"{path}: missing column(s) {', '.join(c for c in SFT_COLUMNS if c not in columns)} "
                f"(found: {', '.join(sorted(columns)) or 'none'}); write SFT records with `heal prep` or give the "
                f"file prompt and completion columns")
        records = [{**r, **_derive(r, columns, task)} for r in records]
    out = []
    for row, record in enumerate(records, start=2 if str(path).endswith((".csv", ".csv.gz")) else 1):
        prompt, completion = record.get("prompt"), record.get("completion")
        if not isinstance(prompt, str) or not prompt.strip() or not isinstance(completion, str) \
                or not completion.strip():
            raise HealError(f"{path}: row {row} has an empty prompt or completion; drop such rows (heal prep does)")
        out.append({**record, "id": str(record.get("id", row))})
    _check_task(out, task, path)
    return out


def _check_task(records: list[dict], task: str, path: str | Path) -> None:
    """A file whose records say they belong to another task was probably passed by mistake."""
    expected = RECORD_TASKS.get(task)
    found = {str(r["task"]) for r in records if r.get("task")}
    if expected and found and not found & expected:
        raise HealError(f"{path}: records are task {', '.join(sorted(found))} but --dataset is {task}; "
                        f"pass the matching --dataset (or --dataset other)")


def load_sft_records(path: str | None, task: str, flag: str = "--dataset_path") -> list[dict]:
    if not path:
        raise HealError(f"{flag} is required: a processed file from `heal prep` (.csv, .jsonl or .parquet)")
    if not Path(path).exists():
        raise HealError(f"{path}: {flag} file not found; write it with `heal prep` first")
    check_input_path(path, "dataset")
    return to_sft_records(read_records(path), task, path)


def credentialed(records: list[dict], path: str | None) -> bool:
    return is_credentialed(records, path)
