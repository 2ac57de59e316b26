"""The stages of a `heal pipeline` file: loaded with their placeholders resolved, checked before anything runs, each
with the earlier stages it reads from, and fingerprinted for resume. heal.pipeline runs them (its docstring describes
the file).

    folder, stages, raw = load("experiments/configs/quickstart.yaml")   # run folder, stages in file order, the mapping
    validate(Path("experiments/configs/quickstart.yaml"), stages)       # a HealError naming the key, or None
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from heal.contracts import VerbContract, contract_of, stage_verbs
from heal.errors import HealError

TOP_KEYS = ("run_dir", "stages", "description", "title")
STAGE_KEYS = ("verb", "args", "description", "launch")
BUILTIN = Path(__file__).parent / "data" / "builtin"  # ${builtin}: data files shipped with HEAL
_RESERVED = ("run_dir", "builtin")  # placeholders that are not stages
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


@dataclass
class Stage:
    name: str
    verb: str
    args: dict  # placeholders resolved
    output: Path
    contract: VerbContract  # what the verb writes and reads (its module's CONTRACT)
    launch: str | None = None  # e.g. "accelerate launch --config_file …": run the stage as that command's child
    needs: tuple[str, ...] = ()  # earlier stages whose outputs it reads: what --jobs waits for


def load(path: str | Path, run_dir: str | None = None) -> tuple[Path, list[Stage], dict]:
    """(run folder, stages in order, the file's mapping); a HealError naming the key for anything wrong."""
    from heal.config import read_yaml_mapping

    path = Path(path)
    raw = read_yaml_mapping(path, "pipeline config", "a mapping with run_dir and stages")
    _unknown(path, "", raw, TOP_KEYS)
    run_dir = str(run_dir or raw.get("run_dir") or "")
    if not run_dir.strip():
        raise HealError(f"{path}: run_dir is missing; name the run folder (e.g. run_dir: runs/my_run)")
    folder = Path(run_dir)
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise HealError(f"{path}: stages must be a non-empty mapping of stage name → {{verb, args}}")
    outputs: dict[str, Path] = {"run_dir": folder, "builtin": BUILTIN}
    stages = []
    for name, spec in stages_raw.items():
        where = f"stages.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(name)) or name in _RESERVED:
            raise HealError(f"{path}: {where}: stage names are letters, digits and _ (and not run_dir or builtin)")
        spec = {} if spec is None else spec
        if not isinstance(spec, dict):
            raise HealError(f"{path}: {where}: must be a mapping with verb and args")
        _unknown(path, f"{where}.", spec, STAGE_KEYS)
        verb = spec.get("verb", name)
        contract = contract_of(str(verb))
        if contract is None:
            raise HealError(f"{path}: {where}.verb: unknown stage '{verb}'; a stage runs one of: "
                            f"{', '.join(stage_verbs())}")
        args = spec.get("args") or {}
        if not isinstance(args, dict):
            raise HealError(f"{path}: {where}.args: must be a mapping of flag names to values")
        named: set[str] = set()  # the stages its ${stage} placeholders name
        args = {k: _resolve(v, outputs, path, f"{where}.args.{k}", named) for k, v in args.items()}
        if contract.output == "file":
            if not args.get(contract.output_field):
                raise HealError(f"{path}: {where}.args.{contract.output_field}: heal {verb} writes one file; name it "
                                "(e.g. ${run_dir}/data/records.jsonl)")
        else:
            args.setdefault(contract.output_field, str(folder / name))
        output = Path(args[contract.output_field])
        launch = spec.get("launch")
        if launch is not None and (not isinstance(launch, str) or not launch.strip()):
            raise HealError(f"{path}: {where}.launch: a launcher command such as 'accelerate launch --config_file "
                            "experiments/configs/accelerate/deepspeed_zero3.yaml' or 'torchrun --nproc_per_node 8'")
        outputs[name] = output
        needs = tuple(s.name for s in stages if s.name in named)
        stages.append(Stage(name, verb, args, output, contract, launch, needs))
    return folder, stages, raw


def _unknown(path: Path, where: str, mapping: dict, allowed: tuple) -> None:
    extra = sorted(set(map(str, mapping)) - set(allowed))
    if extra:
        raise HealError(f"{path}: {where}{extra[0]}: unknown key; allowed here: {', '.join(allowed)}")


def _resolve(value, outputs: dict[str, Path], path: Path, where: str, named: set[str]):
    if isinstance(value, list):
        return [_resolve(v, outputs, path, where, named) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(1) not in outputs:
            raise HealError(f"{path}: {where}: ${{{match.group(1)}}} names no earlier stage; use ${{run_dir}} or the "
                            f"name of a stage above this one ({', '.join(k for k in outputs if k not in _RESERVED)})")
        named.add(match.group(1))
        return str(outputs[match.group(1)])

    return _PLACEHOLDER.sub(one, value)


def validate(path: Path, stages: list[Stage], check_inputs: bool = True) -> None:
    """Parse every stage's arguments with its verb's parser and check its inputs, before anything runs."""
    produced: list[Path] = []
    for index, stage in enumerate(stages):
        parser = importlib.import_module(module_of(stage)).make_parser()
        dests = {option.lstrip("-").replace("-", "_"): action.dest for action in parser._actions
                 for option in action.option_strings if action.dest not in ("help", "config")}
        for key in list(stage.args):
            if key not in dests:
                raise HealError(f"{path}: stages.{stage.name}.args.{key}: heal {stage.verb} has no such setting; "
                                f"see `heal {stage.verb} --help`")
        # the seed's aliases (model_name …) become the setting's own name, as a --config file needs
        stage.args = {dests[k]: v for k, v in stage.args.items()}
        stage.needs = _needs(stage, stages[:index])
        own = outputs_of(stage)[1:]  # what this stage writes besides its output (a synthetic folds file)
        for key in stage.contract.path_fields:
            value = stage.args.get(key)
            if check_inputs and isinstance(value, str) and value and not _available(value, produced + own, key,
                                                                                     stage.contract):
                raise HealError(f"{path}: stages.{stage.name}.args.{key}: {value} does not exist and no earlier stage "
                                "writes it; fix the path or add the stage that makes it")
        def reject(message: str):
            raise HealError(message)

        parser.error = reject  # argparse's complaint (a bad value) becomes this file's one line
        try:
            parser.parse(_argv(stage.args))
        except HealError as e:
            raise HealError(f"{path}: stages.{stage.name}.args: {e}") from None
        produced += outputs_of(stage)


def _needs(stage: Stage, earlier: list[Stage]) -> tuple[str, ...]:
    """The earlier stages `stage` reads from: those its placeholders name, and those writing a path it reads (a literal
    `${run_dir}/data/x.jsonl` orders like `${x}`). Its settings must have their own names (validate renames them)."""
    reads = [Path(part) for key in stage.contract.path_fields if isinstance(stage.args.get(key), str)
             for part in _paths(stage.args[key])]
    writers = {s.name for s in earlier if any(_written_by(p, outputs_of(s)) for p in reads)}
    return tuple(s.name for s in earlier if s.name in writers or s.name in stage.needs)


def module_of(stage: Stage) -> str:
    """The module whose make_parser/main run the stage: the verb's, or the one its contract names (annotate's
    export)."""
    from heal.cli import VERBS

    return stage.contract.stage_module or VERBS[stage.verb].module


def outputs_of(stage: Stage) -> list[Path]:
    """What a stage writes: its output, plus what its contract says it writes beside it (prep's synthetic folds)."""
    also = stage.contract.also_writes(stage.args) if stage.contract.also_writes else []
    return [stage.output] + [Path(p) for p in also]


def _paths(value: str) -> list[str]:
    """A path field's paths: one path, or a comma-separated list (redteam's prompt files) when no such file exists."""
    if "," in value and not Path(value).exists():
        return [part.strip() for part in value.split(",") if part.strip()]
    return [value]


def _available(value: str, produced: list[Path], key: str, contract: VerbContract) -> bool:
    if len(_paths(value)) > 1:
        return all(_available(part, produced, key, contract) for part in _paths(value))
    if key in contract.models and not _looks_local(value):
        return True  # a Hub id or heal-tiny: the loader decides
    if key == "resume_from_checkpoint" and value in ("last", "true", "True"):
        return True
    target = Path(value)
    if target.exists():
        return True
    return _written_by(target, produced)


def _written_by(path: Path, outputs: list[Path]) -> bool:
    """Whether `path` is one of `outputs` or lies inside one of them (a file in a stage's output folder)."""
    return any(path == out or out in path.parents for out in outputs)


def _looks_local(value: str) -> bool:
    return value.startswith((".", "/", "~")) or Path(value).exists() or value.count("/") != 1 and "/" in value


def _argv(args: dict) -> list[str]:
    """Flags for a verb's parser: booleans as true/false, lists space-separated, None dropped."""
    argv = []
    for key, value in args.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        if isinstance(value, (list, tuple)):
            argv += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            argv += [f"--{key}", json.dumps(value)]
        else:
            argv += [f"--{key}", str(value)]
    return argv


def fingerprint(stage: Stage) -> str:
    """Hash of the verb, the arguments and every input file's size and modification time."""
    inputs = {}
    for key in stage.contract.path_fields:
        value = stage.args.get(key)
        if not isinstance(value, str):
            continue
        for i, part in enumerate(_paths(value)):
            if Path(part).exists() and Path(part) not in outputs_of(stage):
                inputs[key if i == 0 else f"{key}#{i}"] = _digest(Path(part))
    blob = json.dumps({"verb": stage.verb, "args": stage.args, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _digest(path: Path) -> list:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    wal = Path(f"{path}-wal")  # a SQLite database's new rows (annotate's labels) may sit in its write-ahead log
    files += [wal] if path.is_file() and wal.is_file() else []
    return [(str(p.relative_to(path)) if path.is_dir() else "" if p == path else p.name, p.stat().st_size,
             p.stat().st_mtime_ns) for p in files]
