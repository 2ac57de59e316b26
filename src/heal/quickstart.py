"""`heal quickstart`: the whole pipeline on built-in data and heal-tiny, offline on a CPU, in a few minutes.

    heal quickstart                                   # → runs/quickstart (report.html, report.md, every stage)
    heal quickstart --output_dir /tmp/qs --force      # elsewhere; run every stage again
    heal quickstart --preset smollm2                  # the real model: base/SFT/RLHF/RLAIF/d-RLAIF/DPO (≈ 52 min, CPU)
    heal quickstart --jobs 2                          # independent stages side by side (evals, red-teams)

It is `heal pipeline` on the preset shipped with HEAL (heal/presets/quickstart.yaml, also
experiments/configs/quickstart.yaml): synthetic PubMedQA-style items → SFT of heal-tiny → RLAIF labels → reward
model → PPO against that learned reward model, with the verifiable rule:pubmedqa as the gold over-optimisation monitor
(heal.rl.monitor; the best update by the gold is kept) → eval of the base, SFT and PPO models → red-team of SFT and
PPO on built-in harmful and benign medical requests. A rerun skips the stages that are unchanged. It ends with the
before/after table and the path of the report.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal
from pathlib import Path

from heal.config import make_parser as _make_parser

PRESET = Path(__file__).parent / "presets" / "quickstart.yaml"
PRESETS = {"tiny": PRESET, "smollm2": Path(__file__).parent / "presets" / "align_smollm2.yaml"}
DEFAULT_JOBS = {"tiny": 1, "smollm2": 2}
DEFAULT_OUTPUT = {"tiny": "runs/quickstart", "smollm2": "runs/align_smollm2"}


@dataclass
class QuickstartConfig:
    preset: Literal["tiny", "smollm2"] = field(default="tiny", metadata={
        "help": "tiny: heal-tiny on built-in synthetic data (minutes). smollm2: alignment of SmolLM2-135M-Instruct "
                "on the shared public data (../shared/data) — SFT, RLHF, RLAIF, d-RLAIF and DPO compared on held-out "
                "prompts (67 min measured on 2 CPU cores; docs/alignment.md)."})
    output_dir: str | None = field(default=None, metadata={
        "help": "Run folder for every stage's outputs (default: runs/quickstart, or runs/align_smollm2)."})
    force: bool = field(default=False, metadata={"help": "Run every stage again, even when unchanged."})
    stages: str | None = field(default=None, metadata={
        "help": "Comma-separated stage names of the preset to run (default: all)."})
    jobs: int | None = field(default=None, metadata={
        "help": "Run up to N independent stages side by side, each as a child process with its own log "
                "(<output_dir>/logs); as `heal pipeline --jobs`, which shares the cores and GPUs among them. "
                "Default: 1 for tiny; 2 for smollm2, whose SFT, reward models, PPO runs and evaluations are long "
                "enough that two one-thread stages do more work than one two-thread stage."})


def make_parser():
    return _make_parser("heal quickstart", __doc__.split("\n")[0], QuickstartConfig)


def main(config: QuickstartConfig) -> None:
    from heal.pipeline import run_pipeline

    output_dir = config.output_dir or DEFAULT_OUTPUT[config.preset]
    hint = f"heal quickstart --preset {config.preset} --output_dir {output_dir}"
    folder, _ = run_pipeline(PRESETS[config.preset], output_dir, config.stages, config.force, resume_hint=hint,
                             jobs=DEFAULT_JOBS[config.preset] if config.jobs is None else config.jobs)
    if config.preset == "smollm2":
        from heal.frontier import write

        print("\n" + write(folder))
        print(f"\nTable and plot: {folder / 'frontier.md'}, {folder / 'frontier.png'}")
    else:
        print("\n" + before_after_table(folder))
    print(f"\nReport: {folder / 'report.html'} (and report.md beside it)")


def _numbers(folder: Path, stage: str, verb: str) -> dict:
    """A stage's own numbers, read by its verb's contract (heal.contracts): {} if the stage has not run."""
    from heal.contracts import contract_of

    output = folder / stage
    return contract_of(verb).summarize(output).metrics if output.exists() else {}


def before_after_table(folder: Path) -> str:
    """The quickstart's summary: task quality for base / SFT / PPO, reward and KL, red-team for SFT / PPO."""
    def cell(value, digits: int = 3) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    evals = {name: _numbers(folder, f"eval_{name}", "eval") for name in ("base", "sft", "ppo")}
    ppo = _numbers(folder, "ppo", "ppo")
    red = {name: _numbers(folder, f"redteam_{name}", "redteam") for name in ("sft", "ppo")}
    rows = [("PubMedQA accuracy (greedy answer)", *(evals[n].get("pubmedqa/generate/accuracy") for n in evals)),
            ("PubMedQA macro-F1 (greedy answer)", *(evals[n].get("pubmedqa/generate/macro_f1") for n in evals)),
            ("PubMedQA accuracy (log-likelihood)", *(evals[n].get("pubmedqa/loglikelihood/accuracy") for n in evals)),
            # the PPO column is the kept model (--keep_best: its best update by the gold), scored on PPO's own
            # held-out prompts (not the dev items above, which chose nothing)
            ("proxy reward: learned reward model", None, ppo.get("monitor/proxy_first"), _kept(ppo, "proxy")),
            ("gold reward: rule:pubmedqa", None, ppo.get("monitor/gold_first"), _kept(ppo, "gold")),
            ("KL(PPO ‖ SFT) per response", None, 0.0 if ppo else None, _kept(ppo, "kl")),
            ("attack success rate (harmful requests)", None, red["sft"].get("asr"), red["ppo"].get("asr")),
            ("refusal rate (harmful requests)", None, red["sft"].get("refusal_rate"), red["ppo"].get("refusal_rate")),
            ("non-answer rate (harmful requests)", None, red["sft"].get("non_answer_rate"),
             red["ppo"].get("non_answer_rate")),
            ("over-refusal (benign requests)", None, red["sft"].get("over_refusal"), red["ppo"].get("over_refusal"))]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':<{width}}  {'base':>7}  {'SFT':>7}  {'PPO':>7}", "-" * (width + 27)]
    lines += [f"{name:<{width}}  {cell(b):>7}  {cell(s):>7}  {cell(p):>7}" for name, b, s, p in rows]
    harmful, benign = red["sft"].get("harmful", "?"), red["sft"].get("benign", "?")
    kept = (f"PPO = update {ppo['monitor/best_step']} of {ppo.get('train/updates', '?')}, the best by the gold on "
            f"{ppo.get('eval/samples', '?')} prompts held out of PPO's training split" if "monitor/best_step" in ppo
            else "PPO = its last update")
    lines.append(f"(accuracy: 100 held-out synthetic dev items; base = heal-tiny untrained; {kept}; rewards and KL "
                 f"on those prompts; red-team on {harmful} attacked harmful and {benign} benign requests)")
    return "\n".join(lines)


def _kept(ppo: dict, key: str):
    """The PPO model's monitor value: the kept update's (--keep_best), else the last update's."""
    return ppo.get(f"monitor/best_{key}", ppo.get(f"monitor/{key}_last"))


if __name__ == "__main__":
    from heal.cli import run as _run

    sys.exit(_run(["quickstart", *sys.argv[1:]]))
