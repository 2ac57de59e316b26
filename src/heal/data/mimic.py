"""MIMIC-IV-Note discharge summaries → summarisation records (the BioNLP 2024 "Discharge Me!" task).

    heal prep --dataset mimic --input_path discharge.csv.gz --target both --output_path mimic_discharge.parquet

Input: `discharge.csv(.gz)` of MIMIC-IV-Note v2.2 (note_id, subject_id, hadm_id, note_type, note_seq, charttime,
storetime, text). Each note is split into sections at the template's headers ("Chief Complaint:", "Brief Hospital
Course:", ...). The targets are "Brief Hospital Course" (bhc) and "Discharge Instructions" (di); as in Discharge
Me!, the input is the note with *both* target sections removed, whichever target is asked for, so neither leaks;
the record's `prompt` is a one-line instruction, that input, and the target's header as a cue.

The file is read in chunks (`--chunk_size` notes), so memory does not grow with the file (the real one is ~1.1 GB,
331k notes); records are streamed into the output, which appears only when the whole file has been processed.
Every record is marked `source: mimic` and the output's metadata `credentialed: true`: the PHI guard refuses to send
such records to any non-loopback judge or endpoint (PhysioNet's data use agreement).
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from heal.data.io import RecordWriter, check_input_path
from heal.errors import HealError

# Section headers of the MIMIC-IV discharge template, matched at the start of a line, case-insensitively.
# Sub-headings inside a section ("ACTIVE ISSUES:", "# Hypertension:") are deliberately not here: they must not cut
# the Brief Hospital Course short.
SECTION_HEADERS = (
    "Name", "Admission Date", "Discharge Date", "Date of Birth", "Service", "Allergies", "Attending",
    "Chief Complaint", "Major Surgical or Invasive Procedure", "Major Surgical Procedure",
    "History of Present Illness", "Past Medical History", "Social History", "Family History",
    "Physical Exam", "Admission Physical Exam", "Discharge Physical Exam", "Physical Examination",
    "Pertinent Results", "Brief Hospital Course", "Hospital Course", "Medications on Admission",
    "Discharge Medications", "Discharge Disposition", "Facility", "Discharge Diagnosis", "Discharge Diagnoses",
    "Discharge Condition", "Discharge Instructions", "Followup Instructions", "Follow-up Instructions",
)
TARGETS = {"bhc": "brief hospital course", "di": "discharge instructions"}
TARGET_ALIASES = {"hospital course": "brief hospital course"}
TASK_OF = {"bhc": "mimic_bhc", "di": "mimic_di"}
PROMPTS = {
    "bhc": "Write the Brief Hospital Course for this discharge summary.\n\n{note}\n\nBrief Hospital Course:",
    "di": "Write the Discharge Instructions for the patient from this discharge summary.\n\n{note}\n\n"
          "Discharge Instructions:",
}
REQUIRED_COLUMNS = ("text",)
ID_COLUMNS = ("note_id", "subject_id", "hadm_id")

_HEADER_NAMES = frozenset(h.lower() for h in SECTION_HEADERS)
# A line-initial "Words:"; only names in SECTION_HEADERS count (a set lookup beats a 30-way regex alternation).
_HEADER_CANDIDATE = re.compile(r"^[ \t]*([A-Za-z][A-Za-z /&()\-]{1,60}?)[ \t]*:", re.MULTILINE)
_UNDERSCORES = re.compile(r"_{3,}")  # de-identification placeholders: one canonical token


def normalise_whitespace(text: str) -> str:
    """Collapse runs of spaces, trim lines, keep at most one blank line; any run of 3+ underscores becomes `___`."""
    if "____" in text:
        text = _UNDERSCORES.sub("___", text)
    lines: list[str] = []
    for line in text.splitlines():
        line = " ".join(line.split())  # str.split() knows every Unicode space, tabs and NBSP included
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


@dataclass(frozen=True)
class Section:
    name: str  # lower-case header, aliases resolved
    start: int  # offset of the header line
    body_start: int  # offset just after the colon
    end: int  # offset of the next header (or the end of the note)


def split_sections(text: str) -> list[Section]:
    """Sections of a note, in order, found at the template's line-initial headers."""
    matches = [m for m in _HEADER_CANDIDATE.finditer(text) if " ".join(m.group(1).lower().split()) in _HEADER_NAMES]
    sections = []
    for i, match in enumerate(matches):
        name = " ".join(match.group(1).lower().split())
        name = TARGET_ALIASES.get(name, name)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        sections.append(Section(name, match.start(), match.end(), end))
    return sections


@dataclass
class Filters:
    min_input_chars: int = 100
    max_input_chars: int | None = None
    min_target_chars: int = 20
    max_target_chars: int | None = None


def note_to_records(row: dict, targets: tuple[str, ...], filters: Filters, drops: Counter) -> list[dict]:
    """One discharge note → up to one record per target; every skipped record is counted in `drops` by reason."""
    text = row.get("text") or ""
    if not text.strip():
        drops["empty_text"] += 1
        return []
    sections = split_sections(text)
    if not sections:
        drops["no_sections"] += 1
        return []
    by_name = {s.name: s for s in sections}
    removed = [s for s in sections if s.name in TARGETS.values()]
    kept_text, cursor = [], 0
    for section in removed:
        kept_text.append(text[cursor:section.start])
        cursor = section.end
    kept_text.append(text[cursor:])
    note_input = normalise_whitespace("".join(kept_text))

    records = []
    for target in targets:
        section = by_name.get(TARGETS[target])
        reason = _drop_reason(note_input, section, target, filters)
        if reason:
            drops[reason] += 1
            continue
        summary = normalise_whitespace(text[section.body_start:section.end])
        if len(summary) < filters.min_target_chars:
            drops[f"target_too_short:{target}"] += 1
            continue
        if filters.max_target_chars is not None and len(summary) > filters.max_target_chars:
            drops[f"target_too_long:{target}"] += 1
            continue
        note_id = str(row.get("note_id") or row["_row"])
        records.append({
            "id": f"{note_id}-{target}",
            "note_id": note_id,
            "subject_id": str(row.get("subject_id") or ""),
            "hadm_id": str(row.get("hadm_id") or ""),
            "task": TASK_OF[target],
            "source": "mimic",
            "prompt": PROMPTS[target].format(note=note_input),
            "completion": summary,
            "reference": summary,
        })
    return records


def _drop_reason(note_input: str, section: Section | None, target: str, filters: Filters) -> str | None:
    if section is None:
        return f"missing_target:{target}"
    if len(note_input) < filters.min_input_chars:
        return "input_too_short"
    if filters.max_input_chars is not None and len(note_input) > filters.max_input_chars:
        return "input_too_long"
    return None


def iter_note_chunks(path: Path, chunk_size: int) -> Iterator[list[dict]]:
    """Stream a discharge.csv(.gz) as lists of row dicts, checking the columns on the first chunk."""
    import pandas as pd

    try:
        reader = pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_size,
                             compression="infer", encoding_errors="strict")
        offset = 0
        for chunk in reader:
            missing = [c for c in REQUIRED_COLUMNS if c not in chunk.columns]
            if missing:
                raise HealError(f"{path}: no '{missing[0]}' column (found: {', '.join(map(str, chunk.columns))}); "
                                "expected MIMIC-IV-Note discharge.csv columns note_id, subject_id, hadm_id, "
                                "note_type, note_seq, charttime, storetime, text")
            rows = chunk.to_dict("records")
            for i, row in enumerate(rows):
                row["_row"] = f"row{offset + i}"
            offset += len(rows)
            yield rows
    except UnicodeDecodeError as e:
        raise HealError(f"{path}: not valid UTF-8 (byte {e.start} of a chunk); re-encode the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise HealError(f"{path}: the file is empty; expected a discharge.csv header and notes") from None
    except pd.errors.ParserError as e:
        raise HealError(f"{path}: malformed CSV ({str(e).splitlines()[0]})") from None
    except (OSError, EOFError) as e:  # a truncated or corrupt .gz
        raise HealError(f"{path}: cannot be read ({e})") from None


def _process_chunk(args: tuple[list[dict], tuple[str, ...], Filters]) -> tuple[list[dict], Counter]:
    rows, targets, filters = args
    drops: Counter = Counter()
    records = [record for row in rows for record in note_to_records(row, targets, filters, drops)]
    return records, drops


def _dedupe(rows: list[dict], seen: set[str], drops: Counter) -> list[dict]:
    unique = []
    for row in rows:
        note_id = row.get("note_id")
        if note_id:
            if note_id in seen:
                drops["duplicate_note_id"] += 1
                continue
            seen.add(note_id)
        unique.append(row)
    return unique


def _bounded_imap(pool, fn, items: Iterator, window: int) -> Iterator:
    """Like `pool.imap` (ordered), but with at most `window` chunks in flight.

    `Pool.imap` pulls its whole input eagerly, so a fast reader would hold the file in memory while workers lag.
    """
    pending: deque = deque()
    for item in items:
        pending.append(pool.apply_async(fn, (item,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def prepare(input_path: str | Path, writer: RecordWriter, target: str = "both", filters: Filters | None = None,
            chunk_size: int = 2000, num_proc: int = 1, progress: bool = True) -> dict:
    """Stream the notes into `writer`; return the summary (notes read, records kept, dropped by reason)."""
    path = check_input_path(input_path, "discharge notes CSV")
    if target not in (*TARGETS, "both"):
        raise HealError(f"--target {target}: choose bhc, di or both")
    targets = tuple(TARGETS) if target == "both" else (target,)
    filters = filters or Filters()
    drops: Counter = Counter()
    kept: Counter = Counter()
    seen: set[str] = set()
    read = 0

    def work() -> Iterator[tuple[list[dict], tuple[str, ...], Filters]]:
        nonlocal read
        for rows in iter_note_chunks(path, chunk_size):
            read += len(rows)
            yield _dedupe(rows, seen, drops), targets, filters

    bar = _progress(path, progress)
    pool = None
    if num_proc > 1:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(num_proc)
        results = _bounded_imap(pool, _process_chunk, work(), window=2 * num_proc)
    else:
        results = map(_process_chunk, work())
    try:
        for records, chunk_drops in results:
            drops.update(chunk_drops)
            kept.update(r["task"] for r in records)
            writer.write(records)
            bar.update(read - bar.n)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    if read == 0:
        raise HealError(f"{path}: has a header but no notes")
    summary = {"read": read, "kept": sum(kept.values()), "kept_by_task": dict(kept), "dropped": dict(drops),
               "targets": list(targets)}
    if summary["kept"] == 0:
        reasons = ", ".join(f"{k} {v}" for k, v in drops.most_common()) or "none"
        raise HealError(f"{path}: no record kept from {read} notes (dropped: {reasons}); "
                        "check the section headers and the length filters")
    return summary


def _progress(path: Path, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(desc=f"prep {path.name}", unit=" notes", disable=not enabled, mininterval=1.0)
