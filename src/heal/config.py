"""Typed configuration shared by every verb.

Each verb's settings are dataclasses whose field docstrings (`metadata={"help": ...}`) are the `--help` text. They are
parsed with TRL's parser, so `--config run.yaml` supplies values and command-line flags override them:

    heal prep --config experiments/configs/prep_pubmedqa.yaml --fold 3

Every run writes the resolved values next to its output (`save_resolved_config`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Iterable

from heal.errors import HealError


def _parser_class() -> type:
    """HealParser, built on first use: TRL is imported only when a verb parses its flags, never at import time
    (`heal --help` and the server's import stay free of TRL and torch)."""
    global _PARSER
    if _PARSER is None:
        from trl import TrlParser

        class HealParser(TrlParser):
            """TRL's dataclass + YAML parser whose errors are one line and exit code 2."""

            def error(self, message: str):  # argparse calls this for bad flags
                self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")

            def parse(self, args: Iterable[str] | None = None) -> tuple:
                return _parse(self, args)

        _PARSER = HealParser
    return _PARSER


_PARSER: type | None = None


def _parse(parser, args: Iterable[str] | None) -> tuple:
    args = list(sys.argv[1:] if args is None else args)
    config_path = _config_path(args)
    if config_path is not None:
        _check_config_file(config_path, parser)
    try:
        *configs, unknown = parser.parse_args_and_config(args, return_remaining_strings=True)
    except ValueError as e:  # TRL raises ValueError for unknown config keys and non-mapping files
        raise HealError(f"{config_path or 'arguments'}: {e}") from None
    except TypeError as e:  # dataclass construction with a wrong value type from YAML
        raise HealError(f"{config_path or 'arguments'}: {e}") from None
    if unknown:
        raise HealError(f"unknown flag(s) {' '.join(unknown)}; see `{parser.prog} --help`")
    return tuple(configs)


def _config_path(args: list[str]) -> str | None:
    if "--config" not in args:
        return None
    index = args.index("--config")
    if index + 1 >= len(args):
        raise HealError("--config needs a YAML file path")
    return args[index + 1]


def _check_config_file(path: str, parser) -> None:
    config = read_yaml_mapping(path, "config file", "a YAML mapping of flag names to values")
    known = {action.dest for action in parser._actions} | {"env"}
    unknown = sorted(set(config) - known)
    if unknown:
        raise HealError(f"{path}: unknown key(s) {', '.join(unknown)}; see `{parser.prog} --help` for valid keys")


def read_yaml_mapping(path: str | Path, what: str, shape: str) -> dict:
    """The YAML mapping in `path`; a one-line HealError if the file is missing, not YAML, or not a mapping."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise HealError(f"{path}: {what} not found")
    try:
        config = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise HealError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise HealError(f"{path}: must be {shape}")
    return config


def make_parser(prog: str, description: str, *dataclass_types: type):
    """A HealParser (TRL's TrlParser: dataclass fields as flags, `--config file.yaml` with flags on top)."""
    return _parser_class()(dataclass_types=list(dataclass_types), prog=prog, description=description)


def to_dict(*configs: Any) -> dict:
    """Merge configs into one YAML-safe dict (later ones win on shared names).

    TrainingArguments go through their own `to_dict` (enums as values, secrets as placeholders); the `*_token`
    placeholders and values YAML cannot hold are dropped.
    """
    merged: dict = {}
    for config in configs:
        if hasattr(config, "to_dict"):
            merged.update(config.to_dict())
        elif dataclasses.is_dataclass(config):
            merged.update(dataclasses.asdict(config))
    return {k: v for k, v in merged.items() if not k.endswith("_token") and _yaml_safe(v)}


def _yaml_safe(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_yaml_safe(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _yaml_safe(v) for k, v in value.items())
    return False


def save_resolved_config(path: str | Path, *configs: Any) -> Path:
    """Write the resolved settings as YAML (atomically); `heal <verb> --config <path>` reproduces the run."""
    import yaml

    from heal.data.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(*configs), sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path
