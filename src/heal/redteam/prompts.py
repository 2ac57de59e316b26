"""Red-team prompt files in the common formats, with the prompt, category and label columns detected.

    from heal.redteam.prompts import load_prompts
    prompts, summary = load_prompts("../shared/data/adversarial")            # a folder: every file in it
    prompts, summary = load_prompts("harmbench_behaviors_text_val.csv")

| format          | prompt column                  | category column              | label            |
|-----------------|--------------------------------|------------------------------|------------------|
| AdvBench        | goal                           | (none: the data set's name)  | harmful          |
| HarmBench       | Behavior (+ ContextString)     | SemanticCategory             | harmful          |
| JailbreakBench  | Goal / goal                    | Category                     | harmful          |
| XSTest          | prompt                         | type                         | label safe/unsafe|
| MedSafetyBench  | harmful_medical_request        | category (or category_N in the file name) | harmful |
| plain / heal prep | prompt                       | category_name / category     | label if present |

Files are CSV, JSONL, JSON (a list) or Parquet. A file without a `label` column holds harmful prompts. HarmBench's
contextual behaviours are sent as the context, a separator line and the behaviour, as HarmBench does. In a folder,
files with no recognisable prompt column (e.g. AdvBench's harmful_strings.csv, a list of target strings) are skipped
and listed in the summary, and a prompt already seen in an earlier file is not repeated.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from heal.data.io import read_records
from heal.errors import HealError

PROMPT_COLUMNS = ("prompt", "goal", "Goal", "Behavior", "behavior", "harmful_medical_request", "request",
                  "instruction", "query", "question", "forbidden_prompt")
CATEGORY_COLUMNS = ("category_name", "SemanticCategory", "Category", "category", "type", "harm_category",
                    "FunctionalCategory")
LABEL_COLUMNS = ("label",)
ID_COLUMNS = ("id", "BehaviorID", "Index", "index")
FILE_TYPES = (".csv", ".csv.gz", ".jsonl", ".json", ".parquet")

SAFE, UNSAFE = "safe", "unsafe"
_LABELS = {"safe": SAFE, "benign": SAFE, "harmless": SAFE, "unsafe": UNSAFE, "harmful": UNSAFE, "harm": UNSAFE}
# Which data set a file is, from the column that holds its prompts (else the file name).
_DATASET_BY_COLUMN = {"goal": "advbench", "Goal": "jailbreakbench", "Behavior": "harmbench",
                      "harmful_medical_request": "medsafetybench", "forbidden_prompt": "strongreject"}
_MEDSAFETY_CATEGORY = re.compile(r"category_(\d)")


def _pick(columns: list[str], candidates: tuple[str, ...], override: str | None, what: str, flag: str,
          path: Path) -> str | None:
    if override:
        if override.lower() == "none":
            return None
        if override not in columns:
            raise HealError(f"{path}: {flag} {override}: no such column (found: {', '.join(columns)})")
        return override
    return next((c for c in candidates if c in columns), None)


def detect_columns(columns: list[str], path: Path, prompt_column: str | None = None,
                   category_column: str | None = None, label_column: str | None = None) -> dict:
    """{'prompt': …, 'category': … | None, 'label': … | None}; a HealError if there is no prompt column."""
    prompt = _pick(columns, PROMPT_COLUMNS, prompt_column, "prompt", "--prompt_column", path)
    if prompt is None:
        raise HealError(f"{path}: cannot tell which column holds the prompts (found: {', '.join(columns) or 'none'}); "
                        "name it with --prompt_column")
    return {"prompt": prompt,
            "category": _pick(columns, CATEGORY_COLUMNS, category_column, "category", "--category_column", path),
            "label": _pick(columns, LABEL_COLUMNS, label_column, "label", "--label_column", path)}


def _dataset_name(path: Path, prompt_column: str) -> str:
    if prompt_column in _DATASET_BY_COLUMN:
        return _DATASET_BY_COLUMN[prompt_column]
    name = path.name.lower()
    return "xstest" if "xstest" in name else path.name.split(".")[0]


def _label(value, path: Path, row: int, column: str) -> str:
    text = str(value if value is not None else "").strip().lower()
    if text == "":
        return UNSAFE
    if text not in _LABELS:
        raise HealError(f"{path}: row {row + 1}: {column} is {value!r}; expected safe/unsafe (or benign/harmful). "
                        "Pass --label_column none to treat every prompt as harmful")
    return _LABELS[text]


def _category(row: dict, column: str | None, dataset: str, path: Path) -> str:
    value = str(row.get(column) or "").strip() if column else ""
    if dataset == "medsafetybench":
        from heal.data.medsafety import AMA_PRINCIPLES

        match = _MEDSAFETY_CATEGORY.search(path.name)
        number = value or (match.group(1) if match else "")
        if number.isdigit() and int(number) in AMA_PRINCIPLES:
            return f"{number} {AMA_PRINCIPLES[int(number)]}"
    return value or dataset


def _prompt_text(row: dict, column: str) -> str:
    text = str(row.get(column) or "").strip()
    context = str(row.get("ContextString") or "").strip()
    return f"{context}\n\n---\n\n{text}" if text and context else text


def read_prompt_file(path: Path, prompt_column: str | None = None, category_column: str | None = None,
                     label_column: str | None = None) -> list[dict]:
    """One file → prompt items {id, dataset, prompt, category, label}; HealError if it holds none."""
    from heal.data.schema import is_credentialed

    rows = read_records(path)
    if not rows:
        raise HealError(f"{path}: no prompts (the file has no rows); give a file with one prompt per row")
    columns = detect_columns(list(rows[0]), path, prompt_column, category_column, label_column)
    dataset = _dataset_name(path, columns["prompt"])
    id_column = next((c for c in ID_COLUMNS if c in rows[0]), None)
    items = []
    for i, row in enumerate(rows):
        text = _prompt_text(row, columns["prompt"])
        if not text:
            continue
        ident = str(row[id_column]) if id_column and str(row.get(id_column) or "") else str(i)
        items.append({
            "id": f"{dataset}-{ident}", "dataset": dataset, "prompt": text,
            "category": _category(row, columns["category"], dataset, path),
            "label": _label(row.get(columns["label"]), path, i, columns["label"]) if columns["label"] else UNSAFE,
        })
    if items and is_credentialed(rows, path):  # MIMIC-derived prompts: the PHI guard must see it
        for item in items:
            item["credentialed"] = True
    if not items:
        raise HealError(f"{path}: every value in column {columns['prompt']} is empty; no prompts to send")
    return items


def _files(path: Path) -> list[Path]:
    if not path.exists():
        raise HealError(f"{path}: prompt file or folder not found; check --adversarial_prompts_path")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.endswith(".meta.json")
                   and any(p.name.lower().endswith(ext) for ext in FILE_TYPES))
    if not files:
        raise HealError(f"{path}: folder holds no prompt files ({', '.join(FILE_TYPES)})")
    return files


def _normalized(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def sample_round_robin(items: list[dict], limit: int | None) -> list[dict]:
    """At most `limit` items, taking one per (label, category) in turn so every group is represented; file order."""
    if not limit or len(items) <= limit:
        return items
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for item in items:
        groups[(item["label"], item["category"])].append(item)
    queues = list(groups.values())
    chosen: list[dict] = []
    depth = 0
    while len(chosen) < limit:
        for queue in queues:
            if depth < len(queue) and len(chosen) < limit:
                chosen.append(queue[depth])
        depth += 1
    order = {id(item): i for i, item in enumerate(items)}
    return sorted(chosen, key=lambda item: order[id(item)])


def load_prompts(path: str | Path, prompt_column: str | None = None, category_column: str | None = None,
                 label_column: str | None = None, max_per_file: int | None = None) -> tuple[list[dict], dict]:
    """Prompt items from a file, a folder, or a comma-separated list of them; and a summary of what was read."""
    paths = [Path(p.strip()) for p in str(path).split(",") if p.strip()]
    if not paths:
        raise HealError("--adversarial_prompts_path is empty; give a prompt file or folder")
    files = [f for p in paths for f in _files(p)]
    single = len(files) == 1
    items, seen, summary = [], set(), {"files": {}, "skipped": {}}
    for file in files:
        try:
            found = read_prompt_file(file, prompt_column, category_column, label_column)
        except HealError as e:
            if single or all(p.is_file() for p in paths):
                raise
            summary["skipped"][str(file)] = str(e).split(": ", 1)[-1]
            continue
        fresh = [item for item in found if _normalized(item["prompt"]) not in seen]
        seen.update(_normalized(item["prompt"]) for item in fresh)
        kept = sample_round_robin(fresh, max_per_file)
        summary["files"][str(file)] = {"read": len(found), "duplicates": len(found) - len(fresh), "kept": len(kept)}
        items.extend(kept)
    if not items:
        raise HealError(f"{path}: no usable prompts in any file (skipped: "
                        f"{'; '.join(f'{k}: {v}' for k, v in summary['skipped'].items()) or 'none'})")
    _check_unique_ids(items)
    return items, summary


def _check_unique_ids(items: list[dict]) -> None:
    """Ids key the resume file; two files of the same data set must not collide."""
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item["id"]] += 1
        if counts[item["id"]] > 1:
            item["id"] = f"{item['id']}#{counts[item['id']]}"


RESPONSE_COLUMNS = ("completion", "response")


def _xstest_label(category: str | None) -> str:
    """XSTest answer files carry the prompt type, not its label: the contrast_* types are the unsafe prompts."""
    return UNSAFE if str(category or "").startswith("contrast_") else SAFE


def read_responses(path: str | Path, prompt_column: str | None = None, category_column: str | None = None,
                   label_column: str | None = None) -> list[dict]:
    """Answers made elsewhere → rows {key, row, id, dataset, category, label, attack, prompt, response}, input order.

    The prompt column is detected as for prompt files; the answer is `completion` or `response`; `id` is kept as
    given (else the row number); `attack` and `dataset` are kept when present (a HEAL responses.jsonl re-judges
    as it was run).
    """
    path = Path(path)
    if not path.is_file():
        raise HealError(f"{path}: responses file not found; check --responses_path")
    rows = read_records(path)
    if not rows:
        raise HealError(f"{path}: no rows; give a CSV/JSONL file with one prompt and its answer per row")
    names = list(rows[0])
    columns = detect_columns(names, path, prompt_column, category_column, label_column)
    answer = next((c for c in RESPONSE_COLUMNS if c in names), None)
    if answer is None:
        raise HealError(f"{path}: no answer column (found: {', '.join(names)}); name it `completion` or `response`")
    dataset = _dataset_name(path, columns["prompt"])
    derive = columns["label"] is None and any(str(row.get("type") or "").startswith("contrast_") for row in rows)
    out = []
    for i, row in enumerate(rows):
        prompt = _prompt_text(row, columns["prompt"])
        if not prompt:
            raise HealError(f"{path}: row {i + 1}: {columns['prompt']} is empty; every row needs the prompt")
        category = _category(row, columns["category"], dataset, path)
        label = (_xstest_label(row.get("type")) if derive else
                 _label(row.get(columns["label"]), path, i, columns["label"]) if columns["label"] else UNSAFE)
        ident = str(row["id"]) if str(row.get("id") if row.get("id") is not None else "") != "" else str(i)
        response = row.get(answer)
        out.append({"key": str(i), "row": i, "id": ident, "dataset": str(row.get("dataset") or dataset),
                    "category": category, "label": label, "attack": str(row.get("attack") or "direct"),
                    "prompt": prompt, "response": "" if response is None else str(response)})
    return out
