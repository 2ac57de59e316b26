"""Preference pairs: load and validate them in any common layout, or derive them from references.

Accepted layouts (all become `prompt`/`chosen`/`rejected` strings plus whatever extra columns the file had):
- TRL's explicit-prompt layout, plain: prompt, chosen, rejected are strings;
- TRL's conversational layout: prompt is a list of {role, content} messages, chosen/rejected the assistant turn(s);
- `question` / `response_chosen` / `response_rejected` (MedicalGPT and similar reward sets);
- Anthropic HH-RLHF transcripts: chosen and rejected are whole "\\n\\nHuman: … \\n\\nAssistant: …" dialogues sharing
  everything up to the last assistant turn; that shared part becomes the prompt.

Reference-derived pairs (no judge, no human):
- PubMedQA (`pubmedqa_pairs`): chosen = the gold answer (correct decision + the abstract's conclusion); rejected = the
  same conclusion under a wrong decision, chosen at random per item (seeded); with `policy_answers`, a policy sample
  whose decision is wrong is used as the rejected answer instead (on-policy negatives).
- Safety (`safety_pairs`): chosen = the reference safe response (a refusal or redirection, e.g. MedSafetyBench);
  rejected = a policy sample that complied, fully or partly (heal.redteam.judging's rules). Prompts whose samples
  all refused or gave no answer are skipped: there is nothing to learn from them.
"""

from __future__ import annotations

import random
from pathlib import Path

from heal.data.io import read_records
from heal.errors import HealError

_HUMAN, _ASSISTANT = "\n\nHuman:", "\n\nAssistant:"


def _message_text(value, path: Path, row: int, field: str) -> str:
    """A string, or the text of a conversational value (a message list: the last assistant turn for answers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) and "content" in m for m in value):
        if field != "prompt":
            turns = [m for m in value if m.get("role") == "assistant"] or value
            return str(turns[-1]["content"])
        if len(value) == 1:
            return str(value[0]["content"])
        return "\n\n".join(f"{m.get('role', 'user').capitalize()}: {m['content']}" for m in value)
    if value is None:
        return ""
    raise HealError(f"{path}: row {row}: field '{field}' must be text or a list of {{role, content}} messages")


def split_hh_transcript(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen answer, rejected answer) from two HH-RLHF transcripts that share their history."""
    def last_answer(transcript: str) -> str:
        return transcript[transcript.rfind(_ASSISTANT) + len(_ASSISTANT):].strip()

    prompt = chosen[:chosen.rfind(_ASSISTANT)].strip()
    if prompt.startswith("Human:") and prompt.count("Human:") == 1:
        prompt = prompt[len("Human:"):].strip()  # a single human turn: the question itself
    return prompt, last_answer(chosen), last_answer(rejected)


def normalise_pair(record: dict, path: Path, row: int) -> dict:
    """One raw record → {prompt, chosen, rejected, ...extra columns}, validated."""
    if {"question", "response_chosen", "response_rejected"} <= set(record):
        prompt, chosen, rejected = record["question"], record["response_chosen"], record["response_rejected"]
        extra = {k: v for k, v in record.items() if k not in ("question", "response_chosen", "response_rejected")}
    elif {"chosen", "rejected"} <= set(record):
        chosen = _message_text(record["chosen"], path, row, "chosen")
        rejected = _message_text(record["rejected"], path, row, "rejected")
        prompt = _message_text(record.get("prompt"), path, row, "prompt")
        if chosen.lstrip("\n").startswith("Human:") and _ASSISTANT in chosen:  # HH-RLHF transcripts
            prompt, chosen, rejected = split_hh_transcript(chosen, rejected)
        extra = {k: v for k, v in record.items() if k not in ("prompt", "chosen", "rejected")}
    else:
        raise HealError(f"{path}: row {row}: no preference columns (found: {', '.join(sorted(record))}); expected "
                        "prompt/chosen/rejected or question/response_chosen/response_rejected")
    prompt, chosen, rejected = str(prompt).strip(), str(chosen).strip(), str(rejected).strip()
    for name, value in (("prompt", prompt), ("chosen", chosen), ("rejected", rejected)):
        if not value:
            raise HealError(f"{path}: row {row}: empty '{name}'; remove the row or fill it in")
    if chosen == rejected:
        raise HealError(f"{path}: row {row}: chosen and rejected are identical; a pair needs two different answers")
    return {**extra, "prompt": prompt, "chosen": chosen, "rejected": rejected}


def load_preferences(path: str | Path) -> list[dict]:
    """Read a preference file (.jsonl/.json/.csv/.parquet) in any layout above; errors name the row."""
    path = Path(path)
    records = read_records(path)
    if not records:
        raise HealError(f"{path}: no preference pairs in the file")
    return [normalise_pair(record, path, row) for row, record in enumerate(records, 1)]


def _keep(record: dict, *skip: str) -> dict:
    return {k: v for k, v in record.items() if k not in ("completion", *skip)}


def pubmedqa_pairs(records: list[dict], seed: int = 0, policy_answers: dict[str, list[str]] | None = None) -> list[dict]:
    """Reference-derived PubMedQA pairs (see the module docstring). `records` come from `heal prep --dataset pubmedqa`."""
    from heal.data.pubmedqa import format_completion, parse_decision
    from heal.data.schema import PUBMEDQA_LABELS

    pairs = []
    for record in records:
        label = str(record.get("label", "")).strip().lower()
        if label not in PUBMEDQA_LABELS:
            raise HealError(f"record {record.get('id')}: PubMedQA pairs need a gold 'label' (yes/no/maybe); is this a "
                            "labelled file from `heal prep --dataset pubmedqa`?")
        chosen = record.get("completion") or record.get("reference") or format_completion(label, record.get(
            "long_answer", ""))
        wrong = [a for a in (policy_answers or {}).get(str(record.get("id")), [])
                 if parse_decision(a) not in (None, label)]
        if wrong:
            rejected, kind = wrong[0], "policy_sample"
        else:
            rng = random.Random(f"{seed}-{record.get('id')}")
            other = rng.choice([x for x in PUBMEDQA_LABELS if x != label])
            rejected, kind = format_completion(other, record.get("long_answer", "")), "wrong_decision"
        pairs.append({**_keep(record), "prompt": record["prompt"], "chosen": chosen, "rejected": rejected,
                      "pair_source": kind})
    return pairs


def safety_pairs(records: list[dict], policy_answers: dict[str, list[str]]) -> list[dict]:
    """Safe reference response (chosen) vs a compliant policy sample (rejected) for harmful prompts."""
    from heal.redteam.judging import judge_outcomes

    pairs = []
    for record in records:
        safe = record.get("completion") or record.get("reference") or record.get("safe_response")
        if not safe:
            raise HealError(f"record {record.get('id')}: safety pairs need the safe response in 'completion' or "
                            "'reference' (e.g. `heal prep --dataset medsafety --records sft`)")
        answers = policy_answers.get(str(record.get("id")), [])
        # Compliance, full or partial, by the red-team grader's rules; refusals and non-answers are not rejected
        # examples of harm (an empty or off-topic sample teaches nothing about refusing).
        outcomes = judge_outcomes([(record["prompt"], a) for a in answers], ["rules"])["rules"]
        complied = [a for a, o in zip(answers, outcomes) if o.label in ("full_compliance", "partial_refusal")]
        if complied:
            pairs.append({**_keep(record), "prompt": record["prompt"], "chosen": safe, "rejected": complied[0],
                          "pair_source": "policy_sample"})
    return pairs
