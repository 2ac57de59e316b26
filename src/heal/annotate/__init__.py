"""`heal annotate`: a web page where clinicians label preference pairs (RLHF data), backed by one SQLite file.

    heal annotate add-annotator alice --db_path labels.sqlite --admin     # prints alice's token, once
    heal annotate add-annotator bob --db_path labels.sqlite
    heal annotate reset-token bob --db_path labels.sqlite                 # a lost token: new one, old one revoked
    heal annotate serve --pairs_path data/processed/pairs.jsonl --db_path labels.sqlite   # http://127.0.0.1:8008
    heal annotate stats --db_path labels.sqlite
    heal annotate export --db_path labels.sqlite --output_path data/processed/clinician_prefs.jsonl

See docs/annotate.md for the page, the API (with curl examples), the export rule and the clinician's path from
labels to `heal reward` and `heal ppo`.
"""

from __future__ import annotations

import argparse
import sys

from heal.annotate.config import COMMANDS, AddAnnotatorConfig, ResetTokenConfig, ServeConfig, command_parser
from heal.contracts import VerbContract, records_file_summary
from heal.errors import HealError


# As a pipeline stage (`verb: annotate`), the verb exports the clinicians' labels as preference pairs.
CONTRACT = VerbContract(output="file", inputs=("db_path",), stage_module="heal.annotate.export",
                        summarize=lambda output: records_file_summary(output, "preference pairs"))


class AnnotateParser(argparse.ArgumentParser):
    """`heal annotate <command> [flags]`: picks the command's own parser (heal.annotate.config)."""

    def __init__(self):
        super().__init__(prog="heal annotate", description=__doc__.split("\n")[0],
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog="commands:\n" + "\n".join(f"  {name:<14} {summary}"
                                                           for name, (_, summary) in COMMANDS.items())
                         + "\n\nRun `heal annotate <command> --help` for its flags.")
        self.add_argument("command", choices=list(COMMANDS), help="what to do (see below)")

    def error(self, message: str):
        raise HealError(f"{message} (see `{self.prog} --help`)")

    def parse(self, args=None) -> tuple:
        args = list(sys.argv[1:] if args is None else args)
        if not args or args[0] in ("-h", "--help"):
            self.print_help()
            self.exit(0 if args else 2)
        if args[0] not in COMMANDS:
            self.error(f"unknown command '{args[0]}'; choose one of: {', '.join(COMMANDS)}")
        return command_parser(args[0]).parse(args[1:])


def make_parser() -> AnnotateParser:
    return AnnotateParser()


def main(config) -> object:
    if isinstance(config, ServeConfig):
        from heal.annotate.serve import serve

        return serve(config)
    if isinstance(config, AddAnnotatorConfig):
        from heal.annotate.store import Store

        token = Store(config.db_path).add_annotator(config.name, config.admin)
        print(f"annotator {config.name}{' (admin)' if config.admin else ''} added to {config.db_path}.\n"
              f"token (shown once; only its hash is stored): {token}")
        return token
    if isinstance(config, ResetTokenConfig):
        from heal.annotate.store import Store

        token = Store(config.db_path, create=False).reset_token(config.name)
        print(f"new token for {config.name} (shown once; the old one no longer works): {token}")
        return token
    module = {"ExportConfig": "export", "StatsConfig": "stats"}.get(type(config).__name__)
    if module is None:
        raise HealError(f"heal annotate: unknown settings {type(config).__name__}")
    import importlib

    return importlib.import_module(f"heal.annotate.{module}").main(config)
