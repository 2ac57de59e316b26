"""The `heal` command: one registry of verbs, each backed by a module with `make_parser()` and `main(*configs)`.

    heal --help
    heal prep --dataset pubmedqa --input_path ../shared/data/pubmedqa/ori_pqal_trainval.json --output_path pqa.csv

Nothing heavy (torch, transformers, TRL) is imported here: a verb's module is imported only when that verb runs.
`heal <verb> --help` prints the verb's help as its parser writes it, saved in heal/help/<verb>.txt (the training
verbs' parsers are built from TRL's configs, which import torch); tests/test_cli.py checks every file against its
parser, and `python scripts/update_help.py` rewrites them after a flag or its help text changes.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Verb:
    summary: str
    module: str | None  # None: not built yet
    issue: str = ""  # where an unbuilt verb is tracked


VERBS: dict[str, Verb] = {
    "prep": Verb("raw PubMedQA / MIMIC-IV-Note / ACI-Bench / MedSafetyBench (or built-in synthetic) → records",
                 "heal.data.prep"),
    "sft": Verb("supervised fine-tuning of a policy (full, LoRA, QLoRA)", "heal.sft.train"),
    "label": Verb("RLAIF: sample answers from a policy and have an AI judge label preference pairs",
                  "heal.feedback.label"),
    "reward": Verb("train a reward model on preference pairs", "heal.reward.train"),
    "ppo": Verb("PPO against a reward model, an AI judge's score or a verifiable rule", "heal.ppo.train"),
    "dpo": Verb("direct preference optimisation (TRL DPOTrainer)", "heal.dpo.train"),
    "grpo": Verb("group relative policy optimisation (TRL GRPOTrainer)", "heal.grpo.train"),
    "eval": Verb("task metrics: PubMedQA accuracy/macro-F1, summary ROUGE, robustness", "heal.eval.evaluate"),
    "redteam": Verb("jailbreak and harmful-request testing, over-refusal, per-category report", "heal.redteam.run"),
    "annotate": Verb("web page for clinicians to label preferences (SQLite-backed)", "heal.annotate"),
    "serve": Verb("OpenAI-compatible HTTP server for a trained model", "heal.serve"),
    "pipeline": Verb("run the stages declared in one YAML file, resumably", "heal.pipeline"),
    "quickstart": Verb("the whole pipeline on built-in data and heal-tiny, offline on a CPU", "heal.quickstart"),
}

EXIT_USAGE = 2  # user-fixable problem: bad flag, bad file, unbuilt verb
HELP_DIR = Path(__file__).parent / "help"  # <verb>.txt: each verb's --help, written by render_help
HELP_WIDTH = 120  # columns of the saved help (argparse would otherwise follow the terminal that wrote it)


def _usage() -> str:
    from heal import __version__

    width = max(map(len, VERBS))
    lines = [
        f"usage: heal <verb> [flags]   (heal {__version__})",
        "",
        "Align language models for health care: prep → sft → reward → ppo → eval → redteam.",
        "",
        "verbs:",
    ]
    for name, verb in VERBS.items():
        note = "" if verb.module else "  [not built yet]"
        lines.append(f"  {name:<{width}}  {verb.summary}{note}")
    lines += ["", "Run `heal <verb> --help` for a verb's flags; every verb takes --config file.yaml."]
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> int:
    """Dispatch `argv` (without the program name) to a verb; return the process exit code."""
    from heal.errors import HealError

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else EXIT_USAGE
    if argv[0] in ("-V", "--version"):
        from heal import __version__

        print(f"heal {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    verb = VERBS.get(name)
    if verb is None:
        print(f"heal: error: unknown verb '{name}'; choose one of: {', '.join(VERBS)}", file=sys.stderr)
        return EXIT_USAGE
    if verb.module is None:
        print(f"heal {name}: not built yet; it lands with {verb.issue}", file=sys.stderr)
        return EXIT_USAGE
    if rest in (["-h"], ["--help"]) and (HELP_DIR / f"{name}.txt").is_file():
        print((HELP_DIR / f"{name}.txt").read_text(encoding="utf-8"), end="")
        return 0
    from heal.pipeline_jobs import follow_thread_share

    follow_thread_share()  # in a `heal pipeline --jobs` child: the pipeline may move idle cores to this stage
    module = importlib.import_module(verb.module)
    try:
        configs = module.make_parser().parse(rest)
        module.main(*configs)
    except HealError as e:
        print(f"heal {name}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"heal {name}: interrupted", file=sys.stderr)
        return 130
    return 0


def render_help(name: str) -> str:
    """`heal <name> --help` as the verb's parser writes it, HELP_WIDTH columns wide (heal/help/<name>.txt)."""
    import argparse
    import functools

    parser = importlib.import_module(VERBS[name].module).make_parser()
    base = parser.formatter_class if isinstance(parser.formatter_class, type) else argparse.HelpFormatter
    parser.formatter_class = functools.partial(base, width=HELP_WIDTH)
    return parser.format_help()


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
