"""Settings of `heal annotate`'s sub-commands, and a light parser for them.

Each sub-command is one dataclass whose field help is its `--help`, as everywhere in HEAL. The parser is plain
argparse rather than TRL's (heal.config): `heal annotate serve` runs on a clinician's laptop or a small VM where
importing torch/TRL only to read flags would cost seconds and gigabytes. `--config file.yaml` works the same way:
the file supplies values, flags override them.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Iterable

from heal.errors import HealError


@dataclass
class ServeConfig:
    db_path: str = field(metadata={"help": "SQLite database of annotators, pairs and labels (created if missing)."})
    pairs_path: str | None = field(default=None, metadata={
        "help": "Pairs to label: any preference file HEAL reads (prompt/chosen/rejected, `heal label` output, "
                "HH-RLHF, question/response_chosen/response_rejected) or a candidate file (prompt + candidates "
                "list). Imported once; importing the same file again adds nothing. Optional when the database "
                "already holds pairs."})
    host: str = field(default="127.0.0.1", metadata={
        "help": "Interface to bind: 127.0.0.1 (this machine only, the default) or 0.0.0.0 (every interface)."})
    port: int = field(default=8008, metadata={"help": "TCP port."})
    labels_per_pair: int = field(default=2, metadata={
        "help": "How many different annotators label each pair (2+ gives inter-annotator agreement)."})
    allow_credentialed_on_network: bool = field(default=False, metadata={
        "help": "Serve pairs from credentialed data (source: mimic) on a non-loopback --host anyway. Only when "
                "everyone who can reach the host is covered by the PhysioNet data use agreement."})
    reservation_minutes: float = field(default=60.0, metadata={
        "help": "A pair shown to an annotator stays reserved for them this long; after that, an unlabelled pair "
                "may be offered to someone else too (they still see it when they come back)."})


@dataclass
class AddAnnotatorConfig:
    name: str = field(metadata={"help": "Annotator's name (letters, digits, . _ -; shown on the admin page)."})
    db_path: str = field(metadata={"help": "SQLite database (created if missing)."})
    admin: bool = field(default=False, metadata={
        "help": "Also an admin: sees everyone's progress and agreement and may edit the guidelines."})


@dataclass
class ResetTokenConfig:
    name: str = field(metadata={"help": "The annotator whose token is replaced (the old one stops working at once)."})
    db_path: str = field(metadata={"help": "SQLite database written by `heal annotate serve`."})


@dataclass
class ExportConfig:
    db_path: str = field(metadata={"help": "SQLite database written by `heal annotate serve`."})
    output_path: str = field(metadata={
        "help": "Preference file (.jsonl/.csv/.parquet): prompt/chosen/rejected + label metadata; `heal reward` "
                "and `heal dpo` read it as it is."})
    min_labels: int = field(default=1, metadata={
        "help": "Export a pair only when at least this many annotators labelled it (e.g. 2 for double-labelled "
                "data only)."})
    include_phi_flagged: bool = field(default=False, metadata={
        "help": "Also export pairs an annotator flagged as containing PHI (default: left out and counted)."})


@dataclass
class StatsConfig:
    db_path: str = field(metadata={"help": "SQLite database written by `heal annotate serve`."})
    output_path: str | None = field(default=None, metadata={"help": "Also write the statistics as JSON here."})


COMMANDS: dict[str, tuple[type, str]] = {
    "serve": (ServeConfig, "start the annotation web app (FastAPI + SQLite)"),
    "add-annotator": (AddAnnotatorConfig, "create an annotator and print their sign-in token (once)"),
    "reset-token": (ResetTokenConfig, "give an annotator a new token (lost or leaked); the old one is revoked"),
    "export": (ExportConfig, "write the labels as prompt/chosen/rejected pairs for heal reward / heal dpo"),
    "stats": (StatsConfig, "progress per annotator, inter-annotator and judge–human agreement"),
}
POSITIONAL = {"add-annotator": ("name",), "reset-token": ("name",)}  # `heal annotate add-annotator NAME`


def _to_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("true", "yes", "1", "y", "t"):
        return True
    if value in ("false", "no", "0", "n", "f"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class CommandParser(argparse.ArgumentParser):
    """One sub-command's flags (from its dataclass); errors are one line and exit code 2; `--config` YAML."""

    def __init__(self, prog: str, description: str, config_type: type, positional: tuple[str, ...] = ()):
        super().__init__(prog=prog, description=description)
        self.config_type = config_type
        self.add_argument("--config", help="YAML file of flag values (flags given here override it).")
        for f in dataclasses.fields(config_type):
            required = f.default is dataclasses.MISSING
            kind = {"bool": _to_bool, "int": int, "float": float}.get(str(f.type).split(" ")[0], str)
            options = {"help": f.metadata["help"], "type": kind}
            if kind is _to_bool:
                options.update(nargs="?", const=True)
            if f.name in positional:
                self.add_argument(f.name, nargs="?", **options)
            else:
                self.add_argument(f"--{f.name}", default=None if required else f.default, **options)

    def error(self, message: str):  # argparse's complaint becomes one line and exit code 2 (heal.cli)
        raise HealError(f"{message} (see `{self.prog} --help`)")

    def parse(self, args: Iterable[str] | None = None) -> tuple:
        args = list(sys.argv[1:] if args is None else args)
        namespace, unknown = self.parse_known_args(args)
        if unknown:
            raise HealError(f"unknown flag(s) {' '.join(unknown)}; see `{self.prog} --help`")
        values = vars(namespace)
        config_path = values.pop("config")
        if config_path:
            values = {**_read_config(config_path, self), **{k: v for k, v in values.items()
                                                             if _given(k, args, self)}}
        missing = [f.name for f in dataclasses.fields(self.config_type)
                   if f.default is dataclasses.MISSING and values.get(f.name) is None]
        if missing:
            raise HealError(f"{self.prog}: --{missing[0]} is required (see `{self.prog} --help`)")
        return (self.config_type(**{k: v for k, v in values.items() if k in _names(self.config_type)}),)


def _names(config_type: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config_type)}


def _given(name: str, args: list[str], parser: CommandParser) -> bool:
    """Whether the flag (or the positional) was on the command line, so a --config value yields to it."""
    flag = f"--{name}"
    if any(a == flag or a.startswith(flag + "=") for a in args):
        return True
    return name in POSITIONAL.get(parser.prog.split()[-1], ()) and getattr(parser.parse_args(args), name) is not None


def _read_config(path: str, parser: CommandParser) -> dict:
    from heal.config import read_yaml_mapping

    values = read_yaml_mapping(path, "config file", "a YAML mapping of flag names to values")
    unknown = sorted(set(values) - _names(parser.config_type))
    if unknown:
        raise HealError(f"{path}: unknown key(s) {', '.join(unknown)}; see `{parser.prog} --help` for valid keys")
    defaults = {f.name: (None if f.default is dataclasses.MISSING else f.default)
                for f in dataclasses.fields(parser.config_type)}
    return {**defaults, **values}


def command_parser(name: str) -> CommandParser:
    config_type, summary = COMMANDS[name]
    return CommandParser(f"heal annotate {name}", summary, config_type, POSITIONAL.get(name, ()))
