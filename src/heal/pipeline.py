"""`heal pipeline`: run the stages declared in one YAML file into one run folder, resumably.

    heal pipeline experiments/configs/pipeline_pubmedqa_qwen0.5b.yaml
    heal pipeline experiments/configs/quickstart.yaml --stages eval_ppo,redteam_ppo   # only these (others skipped)
    heal pipeline experiments/configs/quickstart.yaml --jobs 2   # independent stages side by side

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

With `--jobs N`, up to N stages run side by side, each a child process (`python -m heal.cli <verb> --config …`, or its
launcher) writing `<run_dir>/logs/<stage>.log`; a stage starts once every stage it reads from (named by `${stage}`, or
writing a path it reads) has finished. Each child gets 1/N of the cores as OMP_NUM_THREADS and MKL_NUM_THREADS (unless
OMP_NUM_THREADS is set); while fewer than N stages can run, the running ones share every core (torch.set_num_threads on
a signal). When CUDA_VISIBLE_DEVICES is unset and there are N or more GPUs, the child in slot i gets GPUs i, i+N,
i+2N …. After a failure no stage starts; the running ones finish and are recorded (heal.pipeline_jobs).

Each finished stage is recorded in `<run_dir>/pipeline_state.json` with a fingerprint of its verb, its arguments and
its input files (size and modification time); on a rerun a stage whose fingerprint is unchanged is skipped, and
everything downstream of a stage that reran runs again (its inputs changed). A failed stage is named with the command
that resumes the run. The resolved config is `<run_dir>/pipeline.yaml`, each stage's own `--config` file is
`<run_dir>/stages/<stage>.yaml`, and the run report is `<run_dir>/report.html` (+ `report.md`, heal.run_report).
"""

from __future__ import annotations

import gc
import importlib
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from heal.config import make_parser as _make_parser
from heal.errors import HealError
from heal.pipeline_stages import Stage, fingerprint, load, module_of, outputs_of, validate

STATE_FILE = "pipeline_state.json"


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
    jobs: int = field(default=1, metadata={
        "help": "Run up to N stages side by side, each as a child process logging to <run_dir>/logs/<stage>.log; a "
                "stage starts once the stages it reads from have finished. Each child gets OMP_NUM_THREADS = cores / N "
                "(unless OMP_NUM_THREADS is set), and while fewer than N stages can run the running ones share every "
                "core; when CUDA_VISIBLE_DEVICES is unset and there are N or more GPUs, each gets every N-th GPU. 1: "
                "one stage after another, in this process."})


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


# --------------------------------------------------------------------------------------------------- the runner ---

def read_state(folder: Path) -> dict:
    try:
        return json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {"stages": {}}


def stage_argv(stage: Stage, stage_config: Path, overwrite: bool) -> list[str]:
    """The verb's flags: its --config file, and the overwrite flag when the output is this pipeline's own."""
    argv = ["--config", str(stage_config)]
    if overwrite and stage.contract.overwrite_field:
        argv += [f"--{stage.contract.overwrite_field}", "true"]  # only ever a folder this pipeline wrote itself
    return argv


def stage_command(stage: Stage, argv: list[str]) -> list[str]:
    """The stage as a child process: `<launch, or this Python> -m heal.cli <verb> <argv>`."""
    import shlex

    launcher = shlex.split(stage.launch) if stage.launch else [sys.executable]
    # a stage that runs a verb's sub-command (annotate → heal.annotate.export) is `heal annotate export`
    command = [stage.contract.stage_module.rsplit(".", 1)[1]] if stage.contract.stage_module else []
    return [*launcher, "-m", "heal.cli", stage.verb, *command, *argv]


def run_stage(stage: Stage, argv: list[str]) -> None:
    """One verb with its flags (stage_argv): in this process, or as the child of the stage's launcher
    (`accelerate launch … -m heal.cli <verb> --config …`, for several processes or GPUs)."""
    import shlex
    import subprocess

    if stage.launch:
        command = stage_command(stage, argv)
        print("  $ " + shlex.join(command), flush=True)
        code = subprocess.run(command).returncode
        if code:
            raise HealError(f"`{stage.launch} -m heal.cli {stage.verb}` exited with code {code} (its output is above)")
        return
    module = importlib.import_module(module_of(stage))
    configs = module.make_parser().parse(argv)
    module.main(*configs)


class Ledger:
    """pipeline_state.json as the run goes: each stage not selected, skipped, running, done or failed. Saved after every
    change, by this process only (--jobs children never write it)."""

    def __init__(self, config_path: Path, folder: Path, stages: list[Stage], selected: set[str] | None, force: bool):
        self.folder, self.stages, self.selected, self.force = folder, stages, selected, force
        self.state = read_state(folder)
        self.state.update(config=str(config_path), started_at=_now())
        for record in self.state["stages"].values():  # "skipped" describes this run only
            record.pop("skipped", None)

    def header(self, stage: Stage) -> str:
        return f"[{self.stages.index(stage) + 1}/{len(self.stages)}] {stage.name} (heal {stage.verb})"

    def begin(self, stage: Stage) -> list[str] | None:
        """The stage's flags (stage_argv), once its --config file is written and it is recorded as running; None (and
        a line saying why) when it is not selected or unchanged. Its fingerprint is taken now: after its inputs."""
        import yaml

        record = self.state["stages"].get(stage.name, {})
        if self.selected is not None and stage.name not in self.selected:
            print(f"{self.header(stage)}: not selected")
            return None
        digest = fingerprint(stage)
        if not self.force and record.get("status") == "done" and record.get("fingerprint") == digest \
                and stage.output.exists():
            print(f"{self.header(stage)}: unchanged, skipped ({record.get('seconds', 0):.0f} s last time)")
            record["skipped"] = True
            return None
        stage_config = self.folder / "stages" / f"{stage.name}.yaml"
        stage_config.write_text(yaml.safe_dump(stage.args, sort_keys=False), encoding="utf-8")
        for out in outputs_of(stage):
            if stage.contract.output == "file":
                out.parent.mkdir(parents=True, exist_ok=True)
        overwrite = bool(record) and stage.output.exists()  # ours: the state records it
        self.state["stages"][stage.name] = {"verb": stage.verb, "status": "running", "output": str(stage.output)}
        self.save()
        return stage_argv(stage, stage_config, overwrite)

    def done(self, stage: Stage, seconds: float) -> None:
        # the fingerprint is taken again after the run: inputs are unchanged, but it must match the next rerun's
        self.state["stages"][stage.name] = {"verb": stage.verb, "status": "done", "fingerprint": fingerprint(stage),
                                            "seconds": round(seconds, 1), "finished_at": _now(),
                                            "output": str(stage.output)}
        self.save()
        print(f"{self.header(stage)}: done in {seconds:.0f} s", flush=True)

    def failed(self, stage: Stage, error: str) -> None:
        self.state["stages"][stage.name].update(status="failed", error=error)
        self.save()

    def save(self) -> None:
        from heal.data.io import write_json

        write_json(self.folder / STATE_FILE, self.state)


def execute(config_path: Path, folder: Path, stages: list[Stage], selected: set[str] | None, force: bool,
            jobs: int = 1) -> dict:
    """Run the stages: in order in this process, or (jobs > 1) side by side as child processes; returns the state. A
    failing stage raises StageFailed after the state is saved."""
    (folder / "stages").mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config_path, folder, stages, selected, force)
    if jobs > 1:
        _execute_side_by_side(ledger, jobs)
    else:
        for stage in stages:
            argv = ledger.begin(stage)
            if argv is None:
                continue
            print(f"\n{ledger.header(stage)} → {stage.output}", flush=True)
            start = time.perf_counter()
            try:
                run_stage(stage, argv)
            except BaseException as e:
                ledger.failed(stage, _one_line(e))
                raise StageFailed(stage, e) from e
            finally:
                gc.collect()
            ledger.done(stage, time.perf_counter() - start)
    ledger.state["finished_at"] = _now()
    ledger.save()
    return ledger.state


def _execute_side_by_side(ledger: Ledger, jobs: int) -> None:
    """--jobs: each stage a child process logging to <run_dir>/logs/<stage>.log (heal.pipeline_jobs)."""
    from heal.pipeline_jobs import last_lines, run_side_by_side

    def begin(stage: Stage) -> tuple[list[str], Path] | None:
        argv = ledger.begin(stage)
        if argv is None:
            return None
        log = ledger.folder / "logs" / f"{stage.name}.log"
        print(f"{ledger.header(stage)} → {stage.output}: started, log {log}", flush=True)
        return stage_command(stage, argv), log

    def end(stage: Stage, code: int | None, seconds: float, log: Path) -> None:
        if code == 0:
            ledger.done(stage, seconds)
            return
        ledger.failed(stage, "interrupted" if code is None else (last_lines(log, 1) or [f"exit code {code}"])[0][:300])
        print(f"{ledger.header(stage)}: failed after {seconds:.0f} s, log {log}", flush=True)

    failed = run_side_by_side(ledger.stages, jobs, begin, end)
    if failed is not None:
        print(f"\n--- the last lines of {failed.log} ---", *last_lines(failed.log, 20), sep="\n", file=sys.stderr)
        error = ledger.state["stages"][failed.stage.name]["error"]
        raise StageFailed(failed.stage, HealError(f"exit code {failed.process.returncode}, log {failed.log}: {error}"))


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
                 report: bool = True, resume_hint: str | None = None, jobs: int = 1) -> tuple[Path, dict]:
    """Validate, run and report; the CLI's and quickstart's shared entry. Returns (run folder, state)."""
    if jobs < 1:
        raise HealError(f"--jobs {jobs}: must be at least 1 (1 runs the stages one after another in this process)")
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
        state = execute(config_path, folder, stages, selected, force, jobs)
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
    folder, _ = run_pipeline(config.file, config.run_dir, config.stages, config.force, config.report, jobs=config.jobs)
    print(f"\nheal pipeline: run folder {folder}" + (f"; report {folder / 'report.html'}" if config.report else ""))


if __name__ == "__main__":
    from heal.cli import run as _run

    sys.exit(_run(["pipeline", *sys.argv[1:]]))
