"""The data contracts every stage reads and writes.

Processed records follow TRL's dataset conventions, so any TRL trainer reads them unchanged:

| kind        | required columns               | used by                         |
|-------------|--------------------------------|---------------------------------|
| SFT         | prompt, completion             | sft                             |
| preference  | prompt, chosen, rejected       | reward, dpo                     |
| prompt-only | prompt (+ reference, label)    | ppo, grpo, eval, redteam, label |

Extra columns: `id`, `task` (one of TASKS), `reference` (the gold answer text), `label` (yes/no/maybe for PubMedQA,
safe/unsafe for safety prompts), `source` (where the text came from). Records whose `source` is in CREDENTIALED_SOURCES
came from credentialed data and must never be sent to a non-loopback endpoint (see the PHI guard).
"""

from __future__ import annotations

from pathlib import Path

SFT_COLUMNS = ("prompt", "completion")
PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")
PROMPT_COLUMNS = ("prompt",)

TASKS = ("pubmedqa", "mimic_bhc", "mimic_di", "aci", "safety")
# --dataset of the training verbs: the task, and other names for the same task (the seed's and upstream data sets')
TRAINING_TASKS = ("pubmedqa", "mimic", "aci", "safety", "other")
TASK_ALIASES = {"aci_bench": "aci", "medsafety": "safety", "mimic_bhc": "mimic", "mimic_di": "mimic"}
TASK_CHOICES = (*TRAINING_TASKS, *TASK_ALIASES)


def training_task(name: str) -> str:
    """A training verb's --dataset as one of TRAINING_TASKS."""
    return TASK_ALIASES.get(name, name)

PUBMEDQA_LABELS = ("yes", "no", "maybe")

# PhysioNet's data use agreement forbids sending MIMIC text to third-party services.
CREDENTIALED_SOURCES = frozenset({"mimic"})


def is_credentialed(records: list[dict] | None = None, path: str | Path | None = None) -> bool:
    """True if any record, or the file's metadata sidecar, says the data came from a credentialed source."""
    if records and any(str(r.get("source", "")) in CREDENTIALED_SOURCES for r in records):
        return True
    if path is not None:
        from heal.data.io import read_metadata

        meta = read_metadata(path)
        return bool(meta.get("credentialed")) or meta.get("source") in CREDENTIALED_SOURCES
    return False
