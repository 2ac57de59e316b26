"""`heal pipeline`: run the stages declared in one YAML file into one run folder, resumably.

    heal pipeline experiments/configs/pipeline_pubmedqa_qwen0.5b.yaml
    heal pipeline experiments/configs/quickstart.yaml --stages eval_ppo,redteam_ppo   # only these (others skipped)

The file names a run folder and an ordered mapping of stages; each stage is one `heal <verb>` with its flags as
`args` (exactly the keys `heal <verb> --help` lists, as in a `--config` file):

    run_dir: runs/pubmedqa
    stages:
      sft:                                   # stage name; the verb defaults to the name when it is a verb
        args: {model_name_or_path: Qwen/Qwen2.5-0.5B-Instruct, dataset_path: data/processed/pubmedqa_train.jsonl}
      ppo:
        args: {model_name_or_path: "${sft}", reward: "rule:pubmedqa", dataset_path: …}
      eval_ppo:
        verb: eval
        args: {model_path: "${ppo}", dataset_path: …}

`${run_dir}` is the run folder, `${builtin}` HEAL's own data files (heal/data/builtin), and `${<stage>}` a stage's
output: `output_dir` (default `<run_dir>/<stage>`) or, for verbs that write one file (prep, label), its `output_path`.
What a verb writes and which of its settings name inputs is its CONTRACT (heal.contracts), declared in its module. Before anything runs, every stage's verb, keys and values
are checked and every input path must exist or come from an earlier stage; a problem is one line naming the key,
exit 2, and nothing is written.

Stages run in this process by default. A stage with `launch: accelerate launch --config_file <file>` (or
`torchrun --nproc_per_node N`) runs as `<launch> -m heal.cli <verb> --config <run_dir>/stages/<stage>.yaml`, so one
pipeline can put SFT, reward and PPO on many GPUs (DDP, FSDP, DeepSpeed) while prep and eval stay in one process.

Each finished stage is recorded in `<run_dir>/pipeline_state.json` with a fingerprint of its verb, its arguments and
its input files (size and modification time); on a rerun a stage whose fingerprint is unchanged is skipped, and
everything downstream of a stage that reran runs again (its inputs changed). A failed stage is named with the command
that resumes the run. The resolved config is `<run_dir>/pipeline.yaml`, each stage's own `--config` file is
`<run_dir>/stages/<stage>.yaml`, and the run report is `<run_dir>/report.html` (+ `report.md`, heal.run_report).
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from heal.config import make_parser as _make_parser
from heal.contracts import VerbContract, contract_of, stage_verbs
from heal.errors import HealError

TOP_KEYS = ("run_dir", "stages", "description", "title")
STAGE_KEYS = ("verb", "args", "description", "launch")
STATE_FILE = "pipeline_state.json"
BUILTIN = Path(__file__).parent / "data" / "builtin"  # ${builtin}: data files shipped with HEAL
_RESERVED = ("run_dir", "builtin")  # placeholders that are not stages
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


@dataclass
class PipelineConfig:
    file: str = field(metadata={
        "help": "The pipeline YAML file (run_dir + stages); also the first positional argument."})
    stages: str | None = field(default=None, metadata={
        "help": "Comma-separated stage names to run (the others are not run); default: all."})
    force: bool = field(default=False, metadata={
        "help": "Run every selected stage even when its inputs and config are unchanged."})
    run_dir: str | None = field(default=None, metadata={"help": "Override the file's run_dir."})
    report: bool = field(default=True, metadata={"help": "Write report.html and report.md into the run folder."})


@dataclass
class Stage:
    name: str
    verb: str
    args: dict  # placeholders resolved
    output: Path
    contract: VerbContract  # what the verb writes and reads (its module's CONTRACT)
    launch: str | None = None  # e.g. "accelerate launch --config_file …": run the stage as that command's child


def make_parser():
    parser = _make_parser("heal pipeline", __doc__.split("\n")[0], PipelineConfig)
    parse = parser.parse

    def parse_positional(args=None):
        """`heal pipeline run.yaml` and `--config run.yaml` both name the pipeline file (not a flags file)."""
        args = list(sys.argv[1:] if args is None else args)
        if args and not args[0].startswith("-"):
            args = ["--file", *args]
        args = ["--file" if a == "--config" else a for a in args]
        return parse(args)

    parser.parse = parse_positional
    return parser


# --------------------------------------------------------------------------------------------------- the config ---

def load(path: str | Path, run_dir: str | None = None) -> tuple[Path, list[Stage], dict]:
    """(run folder, stages in order, the file's mapping); a HealError naming the key for anything wrong."""
    from heal.config import read_yaml_mapping

    path = Path(path)
    raw = read_yaml_mapping(path, "pipeline config", "a mapping with run_dir and stages")
    _unknown(path, "", raw, TOP_KEYS)
    folder = Path(run_dir or raw.get("run_dir") or "")
    if not str(run_dir or raw.get("run_dir") or "").strip():
        raise HealError(f"{path}: run_dir is missing; name the run folder (e.g. run_dir: runs/my_run)")
    stages_raw = raw.get("stages")
    if not isinstance(stages_raw, dict) or not stages_raw:
        raise HealError(f"{path}: stages must be a non-empty mapping of stage name → {{verb, args}}")
    outputs: dict[str, Path] = {"run_dir": folder, "builtin": BUILTIN}
    stages = []
    for name, spec in stages_raw.items():
        where = f"stages.{name}"
        if not re.fullmatch(r"[A-Za-z0-9_]+", str(name)) or name in ("run_dir", "builtin"):
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
        args = {k: _resolve(v, outputs, path, f"{where}.args.{k}") for k, v in args.items()}
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
        stages.append(Stage(name, verb, args, output, contract, launch))
    return folder, stages, raw


def _unknown(path: Path, where: str, mapping: dict, allowed: tuple) -> None:
    extra = sorted(set(map(str, mapping)) - set(allowed))
    if extra:
        raise HealError(f"{path}: {where}{extra[0]}: unknown key; allowed here: {', '.join(allowed)}")


def _resolve(value, outputs: dict[str, Path], path: Path, where: str):
    if isinstance(value, list):
        return [_resolve(v, outputs, path, where) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        if match.group(1) not in outputs:
            raise HealError(f"{path}: {where}: ${{{match.group(1)}}} names no earlier stage; use ${{run_dir}} or the "
                            f"name of a stage above this one ({', '.join(k for k in outputs if k not in _RESERVED)})")
        return str(outputs[match.group(1)])

    return _PLACEHOLDER.sub(one, value)


def validate(path: Path, stages: list[Stage], check_inputs: bool = True) -> None:
    """Parse every stage's arguments with its verb's parser and check its inputs, before anything runs."""
    produced: list[Path] = []
    for stage in stages:
        parser = importlib.import_module(_stage_module(stage)).make_parser()
        dests = {option.lstrip("-").replace("-", "_"): action.dest for action in parser._actions
                 for option in action.option_strings if action.dest not in ("help", "config")}
        for key in list(stage.args):
            if key not in dests:
                raise HealError(f"{path}: stages.{stage.name}.args.{key}: heal {stage.verb} has no such setting; "
                                f"see `heal {stage.verb} --help`")
        # the seed's aliases (model_name …) become the setting's own name, as a --config file needs
        stage.args = {dests[k]: v for k, v in stage.args.items()}
        for key in stage.contract.path_fields:
            value = stage.args.get(key)
            own = _outputs(stage)[1:]  # what this stage writes besides its output (a synthetic folds file)
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
        produced += _outputs(stage)


def _stage_module(stage: Stage) -> str:
    """The module whose make_parser/main run the stage: the verb's, or the one its contract names (annotate's
    export)."""
    from heal.cli import VERBS

    return stage.contract.stage_module or VERBS[stage.verb].module


def _outputs(stage: Stage) -> list[Path]:
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
    return any(target == out or out in target.parents for out in produced)


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


# --------------------------------------------------------------------------------------------------- the runner ---

def fingerprint(stage: Stage) -> str:
    """Hash of the verb, the arguments and every input file's size and modification time."""
    inputs = {}
    for key in stage.contract.path_fields:
        value = stage.args.get(key)
        if not isinstance(value, str):
            continue
        for i, part in enumerate(_paths(value)):
            if Path(part).exists() and Path(part) not in _outputs(stage):
                inputs[key if i == 0 else f"{key}#{i}"] = _digest(Path(part))
    blob = json.dumps({"verb": stage.verb, "args": stage.args, "inputs": inputs}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _digest(path: Path) -> list:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    wal = Path(f"{path}-wal")  # a SQLite database's new rows (annotate's labels) may sit in its write-ahead log
    files += [wal] if path.is_file() and wal.is_file() else []
    return [(str(p.relative_to(path)) if path.is_dir() else "" if p == path else p.name, p.stat().st_size,
             p.stat().st_mtime_ns) for p in files]


def read_state(folder: Path) -> dict:
    try:
        return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"stages": {}}


def run_stage(stage: Stage, stage_config: Path, overwrite: bool) -> None:
    """One verb, reading the stage's --config file: in this process, or as the child of the stage's launcher
    (`accelerate launch … -m heal.cli <verb> --config …`, for several processes or GPUs)."""
    import shlex
    import subprocess

    argv = ["--config", str(stage_config)]
    if overwrite and stage.contract.overwrite_field:
        argv += [f"--{stage.contract.overwrite_field}", "true"]  # only ever a folder this pipeline wrote itself
    if stage.launch:
        command = [*shlex.split(stage.launch), "-m", "heal.cli", stage.verb, *argv]
        print("  $ " + shlex.join(command), flush=True)
        code = subprocess.run(command).returncode
        if code:
            raise HealError(f"`{stage.launch} -m heal.cli {stage.verb}` exited with code {code} (its output is above)")
        return
    module = importlib.import_module(_stage_module(stage))
    configs = module.make_parser().parse(argv)
    module.main(*configs)


def execute(config_path: Path, folder: Path, stages: list[Stage], selected: set[str] | None, force: bool) -> dict:
    """Run the stages in order; returns the state. A failing stage raises StageFailed after the state is saved."""
    import yaml

    from heal.data.io import write_json

    (folder / "stages").mkdir(parents=True, exist_ok=True)
    state = read_state(folder)
    state.update(config=str(config_path), started_at=_now())
    for record in state["stages"].values():  # "skipped" describes this run only
        record.pop("skipped", None)
    for index, stage in enumerate(stages, 1):
        record = state["stages"].get(stage.name, {})
        header = f"[{index}/{len(stages)}] {stage.name} (heal {stage.verb})"
        if selected is not None and stage.name not in selected:
            print(f"{header}: not selected")
            continue
        digest = fingerprint(stage)
        if not force and record.get("status") == "done" and record.get("fingerprint") == digest \
                and stage.output.exists():
            print(f"{header}: unchanged, skipped ({record.get('seconds', 0):.0f} s last time)")
            record["skipped"] = True
            continue
        print(f"\n{header} → {stage.output}", flush=True)
        stage_config = folder / "stages" / f"{stage.name}.yaml"
        stage_config.write_text(yaml.safe_dump(stage.args, sort_keys=False), encoding="utf-8")
        for out in _outputs(stage):
            if stage.contract.output == "file":
                out.parent.mkdir(parents=True, exist_ok=True)
        overwrite = bool(record) and stage.output.exists()  # ours: the state records it
        start = time.perf_counter()
        state["stages"][stage.name] = {"verb": stage.verb, "status": "running", "output": str(stage.output)}
        write_json(folder / STATE_FILE, state)
        try:
            run_stage(stage, stage_config, overwrite)
        except BaseException as e:
            state["stages"][stage.name].update(status="failed", error=_one_line(e))
            write_json(folder / STATE_FILE, state)
            raise StageFailed(stage, e) from e
        finally:
            gc.collect()
        seconds = time.perf_counter() - start
        state["stages"][stage.name] = {"verb": stage.verb, "status": "done", "fingerprint": fingerprint(stage),
                                       "seconds": round(seconds, 1), "finished_at": _now(),
                                       "output": str(stage.output)}
        # the fingerprint is taken again after the run: inputs are unchanged, but it must match the next rerun's
        write_json(folder / STATE_FILE, state)
        print(f"{header}: done in {seconds:.0f} s", flush=True)
    state["finished_at"] = _now()
    write_json(folder / STATE_FILE, state)
    return state


class StageFailed(Exception):
    def __init__(self, stage: Stage, error: BaseException):
        super().__init__(f"stage {stage.name} (heal {stage.verb}) failed: {_one_line(error)}")
        self.stage, self.error = stage, error


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def save_resolved(folder: Path, raw: dict, stages: list[Stage]) -> None:
    import yaml

    from heal.data.io import atomic_path

    resolved = {k: v for k, v in raw.items() if k != "stages"}
    resolved["run_dir"] = str(folder)
    resolved["stages"] = {s.name: {"verb": s.verb, "args": s.args, **({"launch": s.launch} if s.launch else {})}
                          for s in stages}
    with atomic_path(folder / "pipeline.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")


def run_pipeline(config_path: str | Path, run_dir: str | None = None, only: str | None = None, force: bool = False,
                 report: bool = True, resume_hint: str | None = None) -> tuple[Path, dict]:
    """Validate, run and report; the CLI's and quickstart's shared entry. Returns (run folder, state)."""
    config_path = Path(config_path)
    folder, stages, raw = load(config_path, run_dir)
    selected = None
    if only:
        selected = {s.strip() for s in only.split(",") if s.strip()}
        unknown = sorted(selected - {s.name for s in stages})
        if unknown:
            raise HealError(f"--stages: {', '.join(unknown)} not in {config_path}; stages: "
                            f"{', '.join(s.name for s in stages)}")
    validate(config_path, stages)
    folder.mkdir(parents=True, exist_ok=True)
    save_resolved(folder, raw, stages)
    hint = resume_hint or f"heal pipeline {config_path}" + (f" --run_dir {run_dir}" if run_dir else "")
    try:
        state = execute(config_path, folder, stages, selected, force)
    except StageFailed as failure:
        if report:
            _write_report(folder, stages, raw)
        if isinstance(failure.error, KeyboardInterrupt):
            raise
        if isinstance(failure.error, (HealError, SystemExit)):
            raise HealError(f"{failure}; fix it, then resume with: {hint} (finished stages are skipped)") from None
        import traceback

        traceback.print_exception(failure.error, file=sys.stderr)
        raise HealError(f"{failure} (traceback above); resume with: {hint}") from failure.error
    if report:
        _write_report(folder, stages, raw)
    return folder, state


def _write_report(folder: Path, stages: list[Stage], raw: dict) -> None:
    from heal import run_report

    run_report.write(folder, [(s.name, s.verb, s.output) for s in stages], title=raw.get("title"),
                     description=raw.get("description"))


def main(config: PipelineConfig) -> None:
    folder, _ = run_pipeline(config.file, config.run_dir, config.stages, config.force, config.report)
    print(f"\nheal pipeline: run folder {folder}" + (f"; report {folder / 'report.html'}" if config.report else ""))


if __name__ == "__main__":
    from heal.cli import run as _run

    sys.exit(_run(["pipeline", *sys.argv[1:]]))
