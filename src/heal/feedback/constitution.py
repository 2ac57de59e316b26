"""The health constitution and the judge prompts built from it.

    from heal.feedback.constitution import load_constitution
    constitution = load_constitution()              # the packaged constitution.yaml
    text = constitution.pairwise_prompt(prompt, answer_a, answer_b, cot=False)

A judge reads `pairwise_prompt(...)` and answers with the letter of the better answer; the probabilities of the
letters "A" and "B" give its preference. With `cot=True` it first writes a short rationale (chain of thought) and
then the letter after `VERDICT_CUE`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from heal.errors import HealError

DEFAULT_PATH = Path(__file__).with_name("constitution.yaml")
VERDICT_CUE = "Better answer:"


@dataclass(frozen=True)
class Constitution:
    name: str
    preamble: str
    principles: tuple[tuple[str, str], ...]  # (name, text)
    digest: str  # sha256 of the file's content: part of every cache key

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
    """Read and validate a constitution YAML (name, preamble, principles: [{name, text}])."""
    import yaml

    path = Path(path) if path else DEFAULT_PATH
    if not path.is_file():
        raise HealError(f"{path}: constitution file not found; check --constitution")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise HealError(f"{path}: not valid UTF-8 YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("principles"), list) or not data["principles"]:
        raise HealError(f"{path}: needs a 'principles' list of {{name, text}} entries")
    principles = []
    for i, item in enumerate(data["principles"]):
        if not isinstance(item, dict) or not str(item.get("name", "")).strip() or not str(item.get("text", "")).strip():
            raise HealError(f"{path}: principles[{i}] needs a non-empty name and text")
        principles.append((str(item["name"]).strip(), str(item["text"]).strip()))
    return Constitution(name=str(data.get("name", path.stem)), preamble=str(data.get("preamble", "")),
                        principles=tuple(principles), digest=hashlib.sha256(raw).hexdigest())
