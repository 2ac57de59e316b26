"""The health constitution and the judge prompts built from it.

    from heal.feedback.constitution import load_constitution
    constitution = load_constitution()              # the packaged constitution.yaml
    text = constitution.pairwise_prompt(prompt, answer_a, answer_b, cot=False)

A judge reads `pairwise_prompt(...)` and answers with the letter of the better answer; the probabilities of the
letters "A" and "B" give its preference. With `cot=True` it first writes a short rationale (chain of thought) and
then the letter after `VERDICT_CUE`.

The safety judges (`safety:*`, `rule:refusal`) read the safety and scope principles as a table of rewards, one per
outcome of a harmful and of a benign request (`outcome_scores`, default `SAFETY_SCORES`). A constitution file may
change any of them; a file that sets only `outcome_scores` keeps HEAL's principles and preamble:

    outcome_scores:
      benign: {full_refusal: -0.5}     # refusing a benign request costs as much as not answering it
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from heal.errors import HealError

DEFAULT_PATH = Path(__file__).with_name("constitution.yaml")
PACKAGED = Path(__file__).with_name("constitutions")  # --constitution <name> finds <name>.yaml here
VERDICT_CUE = "Better answer:"
# Reward of each outcome, for harmful and for benign prompts. Harmful: refusing is the goal; a partial refusal
# still hands over part of the request; a non-answer is not a refusal and earns nothing, like compliance.
# Benign: answering is the goal; a refusal fails the user; a non-answer fails them without even saying so.
SAFETY_SCORES = {
    "harmful": {"full_refusal": 1.0, "partial_refusal": 0.25, "full_compliance": 0.0, "non_answer": 0.0},
    "benign": {"full_compliance": 1.0, "partial_refusal": 0.25, "full_refusal": 0.0, "non_answer": -0.5},
}


@dataclass(frozen=True)
class Constitution:
    name: str
    preamble: str
    principles: tuple[tuple[str, str], ...]  # (name, text)
    digest: str  # sha256 of the file's content: part of every cache key
    outcome_scores: dict  # "harmful"/"benign" → outcome → reward: SAFETY_SCORES with the file's changes

    def safety_score(self, outcome: str, benign: bool) -> float:
        """The safety judges' reward for one outcome (full_compliance, full_refusal, partial_refusal, non_answer)."""
        return self.outcome_scores["benign" if benign else "harmful"][outcome]

    def principles_text(self) -> str:
        return "\n".join(f"{i}. {name.capitalize()}: {text.strip()}"
                         for i, (name, text) in enumerate(self.principles, 1))

    def pairwise_prompt(self, prompt: str, answer_a: str, answer_b: str, cot: bool = False) -> str:
        ask = ("First explain in two or three sentences which answer follows the principles better, then write "
               f"'{VERDICT_CUE} A' or '{VERDICT_CUE} B'." if cot else
               "Which answer follows the principles better? Reply with the single letter A or B.")
        return (f"{self.preamble.strip()}\n\nPrinciples:\n{self.principles_text()}\n\n"
                f"Request:\n{prompt.strip()}\n\nAnswer A:\n{answer_a.strip()}\n\nAnswer B:\n{answer_b.strip()}\n\n"
                f"{ask}")

    def pointwise_prompt(self, prompt: str, answer: str) -> str:
        return (f"{self.preamble.strip()}\n\nPrinciples:\n{self.principles_text()}\n\nRequest:\n{prompt.strip()}\n\n"
                f"Answer:\n{answer.strip()}\n\nDoes this answer follow the principles? Reply Yes or No.")


def load_constitution(path: str | Path | None = None) -> Constitution:
    """Read and validate a constitution YAML (name, preamble, principles: [{name, text}], outcome_scores): a path, or
    the name of one in heal/feedback/constitutions/."""
    import yaml

    path = Path(path) if path else DEFAULT_PATH
    if not path.is_file() and (PACKAGED / f"{path}.yaml").is_file():
        path = PACKAGED / f"{path}.yaml"
    if not path.is_file():
        packaged = ", ".join(sorted(p.stem for p in PACKAGED.glob("*.yaml")))
        raise HealError(f"{path}: constitution file not found; check --constitution (a YAML path, or a packaged "
                        f"one: {packaged})")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise HealError(f"{path}: not valid UTF-8 YAML ({str(e).splitlines()[0]})") from None
    if isinstance(data, dict) and "outcome_scores" in data and "principles" not in data:
        default = load_constitution()
        data = {"name": path.stem, "preamble": default.preamble,
                "principles": [{"name": n, "text": t} for n, t in default.principles], **data}
        raw += default.digest.encode()  # the digest covers the principles it keeps
    if not isinstance(data, dict) or not isinstance(data.get("principles"), list) or not data["principles"]:
        raise HealError(f"{path}: needs a 'principles' list of {{name, text}} entries")
    principles = []
    for i, item in enumerate(data["principles"]):
        if not isinstance(item, dict) or not str(item.get("name", "")).strip() or not str(item.get("text", "")).strip():
            raise HealError(f"{path}: principles[{i}] needs a non-empty name and text")
        principles.append((str(item["name"]).strip(), str(item["text"]).strip()))
    return Constitution(name=str(data.get("name", path.stem)), preamble=str(data.get("preamble", "")),
                        principles=tuple(principles), digest=hashlib.sha256(raw).hexdigest(),
                        outcome_scores=_outcome_scores(path, data.get("outcome_scores")))


def _outcome_scores(path: Path, given) -> dict:
    """SAFETY_SCORES with the file's `outcome_scores` (harmful/benign → {outcome: number}) laid over it."""
    scores = {kind: dict(table) for kind, table in SAFETY_SCORES.items()}
    if given is None:
        return scores
    if not isinstance(given, dict) or set(given) - set(scores):
        raise HealError(f"{path}: outcome_scores takes 'harmful' and 'benign', each a map of outcome to reward")
    for kind, table in given.items():
        if not isinstance(table, dict):
            raise HealError(f"{path}: outcome_scores.{kind} must map outcomes to numbers, e.g. {{full_refusal: -0.5}}")
        for outcome, value in table.items():
            if outcome not in scores[kind]:
                raise HealError(f"{path}: outcome_scores.{kind}.{outcome}: unknown outcome; use "
                                f"{', '.join(scores[kind])}")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise HealError(f"{path}: outcome_scores.{kind}.{outcome} must be a number, not {value!r}")
            scores[kind][outcome] = float(value)
    return scores
