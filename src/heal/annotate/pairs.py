"""What clinicians label: pairs of answers to one prompt, read from any preference or candidate file HEAL reads.

- Preference files (every layout heal.feedback.preferences accepts, `heal label` output included): the pair is
  (chosen, rejected). When the file was labelled by an AI judge (`heal label` writes a `judge` column), `chosen` is
  that judge's verdict: it is kept as the pair's AI verdict, shown to a clinician only after they voted, and measured
  against the clinicians (judge–human agreement). A human-labelled file carries no AI verdict.
- Candidate files: `prompt` plus a `candidates` (or `completions`) list of 2+ answers; every two distinct answers
  make a pair.

The order a file gives is never the order a clinician sees: each annotator's A/B order is drawn at random (store.py).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from heal.errors import HealError

CANDIDATE_KEYS = ("candidates", "completions")
# columns `heal label` adds about its judge; they describe the verdict, not the data, and are not shown or exported
AI_COLUMNS = ("judge", "p_chosen", "p_a_first", "p_a_second", "position_flip", "rationale")
MAX_TEXT = 200_000  # characters per prompt or answer; a longer one is almost surely a wrong column


@dataclass
class Pair:
    prompt: str
    answer_1: str
    answer_2: str
    ai_choice: int | None = None  # 1 or 2: the answer an AI judge preferred; None: no AI verdict
    ai_judge: str | None = None
    source: str | None = None  # the data's origin (pubmedqa, mimic, …): `mimic` marks credentialed text
    extra: dict = field(default_factory=dict)  # the file's other columns (id, task, …), carried into the export

    @property
    def fingerprint(self) -> str:
        """Same prompt and same two answers (in either order) → same pair: importing a file twice adds nothing."""
        answers = sorted((self.answer_1, self.answer_2))
        return hashlib.sha256(json.dumps([self.prompt, *answers]).encode()).hexdigest()


def load_pairs(path: str | Path) -> tuple[list[Pair], bool]:
    """(pairs, credentialed) from a preference or candidate file; a one-line HealError for anything wrong."""
    from heal.data.io import read_records
    from heal.data.schema import is_credentialed
    from heal.feedback.preferences import normalise_pair

    path = Path(path)
    records = read_records(path)
    if not records:
        raise HealError(f"{path}: no records; expected preference pairs (prompt/chosen/rejected) or candidates "
                        "(prompt + candidates list)")
    pairs: list[Pair] = []
    for row, record in enumerate(records, 1):
        key = next((k for k in CANDIDATE_KEYS if k in record), None)
        if key and not {"chosen", "rejected"} <= set(record):
            pairs += _candidate_pairs(record, key, path, row)
        else:
            pairs.append(_preference_pair(normalise_pair(record, path, row)))
    for row, pair in enumerate(pairs, 1):
        if max(len(pair.prompt), len(pair.answer_1), len(pair.answer_2)) > MAX_TEXT:
            raise HealError(f"{path}: pair {row}: a text is longer than {MAX_TEXT:,} characters; is this the right "
                            "column?")
    if not pairs:
        raise HealError(f"{path}: no pair of two different answers in the file")
    return pairs, is_credentialed(records, path)


def _preference_pair(record: dict) -> Pair:
    judge = record.get("judge")
    extra = {k: v for k, v in record.items() if k not in ("prompt", "chosen", "rejected", "source", *AI_COLUMNS)}
    return Pair(record["prompt"], record["chosen"], record["rejected"], ai_choice=1 if judge else None,
                ai_judge=str(judge) if judge else None, source=_text_or_none(record.get("source")),
                extra=_json_safe(extra))


def _candidate_pairs(record: dict, key: str, path: Path, row: int) -> list[Pair]:
    candidates = record[key]
    if isinstance(candidates, str):  # a CSV cell holding a JSON list
        try:
            candidates = json.loads(candidates)
        except json.JSONDecodeError:
            candidates = None
    if not isinstance(candidates, list) or not all(isinstance(c, str) for c in candidates):
        raise HealError(f"{path}: row {row}: '{key}' must be a list of answer strings")
    prompt = str(record.get("prompt") or "").strip()
    if not prompt:
        raise HealError(f"{path}: row {row}: empty or missing 'prompt'; a candidate row needs the prompt")
    unique = [c.strip() for c in dict.fromkeys(candidates) if c.strip()]
    extra = {k: v for k, v in record.items() if k not in ("prompt", key, "source")}
    return [Pair(prompt, a, b, source=_text_or_none(record.get("source")), extra=_json_safe(extra))
            for a, b in itertools.combinations(unique, 2)]


def _text_or_none(value) -> str | None:
    return str(value) if value not in (None, "") else None


def _json_safe(extra: dict) -> dict:
    """Keep the columns JSON can hold (parquet may hand back numpy values or timestamps: stored as text)."""
    safe = {}
    for key, value in extra.items():
        try:
            json.dumps(value)
            safe[str(key)] = value
        except TypeError:
            safe[str(key)] = str(value)
    return safe
