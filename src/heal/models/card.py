"""Model cards (README.md) for every model HEAL saves: base model, data, stage, config and metrics.

The card uses the Hub's YAML front matter (library_name, base_model, tags) so it renders on the Hub, and plain
Markdown below it, so it reads well in a terminal too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heal.data.io import atomic_path

# How to use a causal LM a HEAL stage trained (sft, dpo, grpo, ppo cards show it with their folder as {path})
CAUSAL_LM_USAGE = """\
from transformers import AutoModelForCausalLM, AutoTokenizer
from heal.models.prompting import format_prompt

model = AutoModelForCausalLM.from_pretrained("{path}")
tokenizer = AutoTokenizer.from_pretrained("{path}")
inputs = tokenizer(format_prompt(tokenizer, "Question: ..."), return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=64, do_sample=False)
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
"""

CREDENTIALED_WARNING = (
    "**Trained on credentialed data (MIMIC).** The weights may have memorised note text. Do not publish this "
    "model, push it to the Hub or serve it beyond the people covered by the PhysioNet data use agreement."
)


@dataclass
class ModelCard:
    title: str
    stage: str  # sft | reward | ppo | …
    summary: str  # one sentence: what this model is
    base_model: str
    base_is_hub: bool  # only Hub ids go into the front matter's base_model
    weights: str  # "full model", "LoRA merged into the base", "LoRA adapter (needs the base)"
    data: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    credentialed: bool = False
    files: dict[str, str] = field(default_factory=dict)
    usage: str = ""
    pipeline_tag: str = "text-generation"  # the Hub's task: text-classification for reward models

    def render(self) -> str:
        front = ["---", "library_name: transformers", f"pipeline_tag: {self.pipeline_tag}"]
        if self.base_is_hub:
            front.append(f"base_model: {self.base_model}")
        front += ["tags:", "- heal", f"- {self.stage}", "- trl", "- health", "---", ""]
        body = [f"# {self.title}", "", self.summary, ""]
        if self.credentialed:
            body += [CREDENTIALED_WARNING, ""]
        body += ["| | |", "|---|---|", f"| stage | `{self.stage}` |", f"| base model | `{self.base_model}` |",
                 *_packaged_rows(self.base_model), f"| weights | {self.weights} |", ""]
        body += _section("Data", self.data) + _section("Training", self.training)
        body += _section("Metrics", {k: _fmt(v) for k, v in self.metrics.items()})
        body += _section("Files", self.files)
        if self.usage:
            body += ["## Use", "", "```python", self.usage.strip(), "```", ""]
        body += ["## Limitations", "",
                 "A research artefact from the HEAL toolkit, not a medical device: its answers can be wrong or "
                 "unsafe and must not be used for clinical decisions without qualified review.", ""]
        return "\n".join(front + body)

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / "README.md"
        with atomic_path(path) as tmp:
            tmp.write_text(self.render(), encoding="utf-8")
        return path


def _packaged_rows(base_model: str) -> list[str]:
    """Source and license of a base model HEAL converted from a package (smollm2-135m), for the card's table."""
    from heal.models.packaged import PACKAGED, describe

    if base_model not in PACKAGED:
        return []
    return [f"| base model source | {describe(base_model)} |",
            f"| base model license | {PACKAGED[base_model].license} |"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _section(name: str, rows: dict[str, Any]) -> list[str]:
    if not rows:
        return []
    lines = [f"## {name}", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {str(value).replace('|', '/')} |" for key, value in rows.items()]
    return lines + [""]
