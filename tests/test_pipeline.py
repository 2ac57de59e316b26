"""`heal pipeline` and `heal quickstart`: stages chained in one run folder, skipped when unchanged, resumable after a
failure, validated before anything runs; the run report; every preset parses."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml
from helpers import REPO, assert_one_line_error, heal

from heal import pipeline, run_report
from heal.errors import HealError

DATA_STAGES = {
    "data": {"verb": "prep", "args": {"dataset": "synthetic_pubmedqa", "n": 120, "seed": 3,
                                      "output_path": "${run_dir}/data/pqal.json",
                                      "folds_path": "${run_dir}/data/folds.json"}},
    "train_data": {"verb": "prep", "args": {"dataset": "pubmedqa", "input_path": "${data}", "fold": 0,
                                            "folds_path": "${run_dir}/data/folds.json", "part": "train",
                                            "output_path": "${run_dir}/data/train.jsonl"}},
    "dev_data": {"verb": "prep", "args": {"dataset": "pubmedqa", "input_path": "${data}", "fold": 0,
                                          "folds_path": "${run_dir}/data/folds.json", "part": "dev",
                                          "output_path": "${run_dir}/data/dev.jsonl"}},
}
TINY = {"tiny_hidden_size": 32, "tiny_layers": 1, "tiny_heads": 2}
MODEL_STAGES = {
    "sft": {"args": {"model_name_or_path": "heal-tiny", "dataset_path": "${train_data}", **TINY, "max_steps": 4,
                     "per_device_train_batch_size": 8, "eval_split_size": 0, "eval_strategy": "no",
                     "save_strategy": "no", "report_to": "none", "disable_tqdm": True}},
    "ppo": {"args": {"model_name": "${sft}", "reward": "rule:pubmedqa", "dataset_path": "${train_data}",
                     "eval_dataset_path": "${dev_data}", "response_length": 4, "per_device_train_batch_size": 8,
                     "max_steps": 2, "num_ppo_epochs": 1, "max_eval_samples": 8, "save_steps": 10,
                     "disable_tqdm": True}},
    "eval_sft": {"verb": "eval", "args": {"model_path": "${sft}", "dataset_path": "${dev_data}", "max_new_tokens": 4,
                                          "no_progress": True}},
    "eval_ppo": {"verb": "eval", "args": {"model_path": "${ppo}", "dataset_path": "${dev_data}", "max_new_tokens": 4,
                                          "no_progress": True}},
    "redteam_ppo": {"verb": "redteam", "args": {"model_path": "${ppo}", "max_new_tokens": 4, "no_progress": True,
                                                "adversarial_prompts_path": "${builtin}/medical_safety_prompts.csv",
                                                "attacks": "direct", "max_prompts_per_file": 6}},
}


def write_config(tmp_path: Path, stages: dict, **top) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": stages, **top}, sort_keys=False))
    return path


def state(run: Path) -> dict:
    return json.loads((run / "pipeline_state.json").read_text())["stages"]


def test_stages_chain_then_skip_when_unchanged_and_rerun_downstream_of_a_change(tmp_path, capsys):
    config = write_config(tmp_path, DATA_STAGES)
    run = tmp_path / "run"
    code, out, err = heal(capsys, "pipeline", config)
    assert code == 0, err
    assert len((run / "data" / "train.jsonl").read_text().splitlines()) == 108  # 9 of 10 folds
    assert {s["status"] for s in state(run).values()} == {"done"}
    resolved = yaml.safe_load((run / "pipeline.yaml").read_text())
    assert resolved["stages"]["train_data"]["args"]["input_path"] == str(run / "data" / "pqal.json")
    assert (run / "stages" / "train_data.yaml").exists() and (run / "report.html").exists()

    mtime = (run / "data" / "train.jsonl").stat().st_mtime_ns
    code, out, _ = heal(capsys, "pipeline", config)
    assert code == 0 and out.count("unchanged, skipped") == 3
    assert (run / "data" / "train.jsonl").stat().st_mtime_ns == mtime  # not rewritten

    # a changed stage reruns, and so does everything that reads its output
    stages = json.loads(json.dumps(DATA_STAGES))
    stages["data"]["args"]["n"] = 60
    code, out, err = heal(capsys, "pipeline", write_config(tmp_path, stages))
    assert code == 0, err
    assert "unchanged, skipped" not in out
    assert len((run / "data" / "train.jsonl").read_text().splitlines()) == 54


@pytest.mark.parametrize("mutate, needles", [
    (lambda c: c.update(stagez={}), ["stagez", "unknown key"]),
    (lambda c: c["stages"].update(finetune={"args": {}}), ["stages.finetune.verb", "unknown stage 'finetune'"]),
    (lambda c: c["stages"]["train_data"]["args"].update(colour="red"), ["stages.train_data.args.colour",
                                                                        "heal prep has no such setting"]),
    (lambda c: c["stages"]["train_data"]["args"].update(input_path="/nope/pqal.json"),
     ["stages.train_data.args.input_path", "/nope/pqal.json does not exist"]),
    (lambda c: c["stages"]["train_data"]["args"].update(input_path="${later}"), ["${later} names no earlier stage"]),
    (lambda c: c["stages"]["data"].update(when="always"), ["stages.data.when", "unknown key"]),
    (lambda c: c["stages"]["train_data"]["args"].update(fold="three"), ["stages.train_data.args"]),
])
def test_a_bad_config_is_one_line_naming_the_key_and_writes_nothing(mutate, needles, tmp_path, capsys):
    config = {"run_dir": str(tmp_path / "run"), "stages": json.loads(json.dumps(DATA_STAGES))}
    mutate(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    code, _, err = heal(capsys, "pipeline", path)
    assert_one_line_error(code, err, str(path), *needles)
    assert not (tmp_path / "run").exists()


def test_a_failed_stage_is_named_with_the_resume_command_and_finished_stages_are_kept(tmp_path, capsys):
    stages = json.loads(json.dumps(DATA_STAGES))
    # fold 12 does not exist: heal prep refuses it at run time (after the data stage has finished)
    stages["train_data"]["args"]["fold"] = 12
    config = write_config(tmp_path, stages)
    code, _, err = heal(capsys, "pipeline", config)
    assert_one_line_error(code, err, "stage train_data (heal prep) failed", f"resume with: heal pipeline {config}")
    run = tmp_path / "run"
    assert state(run)["data"]["status"] == "done" and state(run)["train_data"]["status"] == "failed"
    assert "failed" in (run / "report.html").read_text()
    code, out, err = heal(capsys, "pipeline", write_config(tmp_path, DATA_STAGES))  # fixed: resume
    assert code == 0, err
    assert "[1/3] data (heal prep): unchanged, skipped" in out and state(run)["train_data"]["status"] == "done"


def test_a_small_pipeline_trains_evaluates_red_teams_and_reports(tmp_path, capsys):
    config = write_config(tmp_path, {**DATA_STAGES, **MODEL_STAGES}, title="small run")
    code, out, err = heal(capsys, "pipeline", config)
    assert code == 0, err
    run = tmp_path / "run"
    assert {s["status"] for s in state(run).values()} == {"done"}
    assert (run / "ppo" / "model.safetensors").exists() and (run / "eval_ppo" / "metrics.json").exists()
    assert json.loads((run / "redteam_ppo" / "redteam.json").read_text())["overall"]["harmful"] > 0

    page = (run / "report.html").read_text()
    assert page.count("<img src='data:image/png;base64,") >= 5  # loss, PPO curves, eval bars, confusion, heatmap
    assert "<h1>small run</h1>" in page and "before and after" in page
    for name in ("sft", "ppo", "eval_sft", "eval_ppo", "redteam_ppo"):
        assert f"<td>{name}</td>" in page
    ppo = json.loads((run / "ppo" / "heal_run.json").read_text())["metrics"]
    assert f"{ppo['eval/accuracy']:.3f}" in page  # the results table reads the stage's own numbers
    assert "![eval_ppo: confusion matrix" in (run / "report.md").read_text()

    # the report can be rebuilt from the run folder alone
    (run / "report.html").unlink()
    run_report.main([str(run)])
    assert (run / "report.html").read_text().count("base64,") == page.count("base64,")


def test_quickstart_table_reads_base_sft_and_ppo(tmp_path):
    run = tmp_path / "qs"
    for name, acc in (("base", 0.3), ("sft", 0.46), ("ppo", 0.81)):
        (run / f"eval_{name}").mkdir(parents=True)
        (run / f"eval_{name}" / "metrics.json").write_text(json.dumps(
            {"metrics": {"pubmedqa/generate/accuracy": acc, "pubmedqa/generate/macro_f1": acc / 2}}))
    (run / "ppo").mkdir()
    (run / "ppo" / "heal_run.json").write_text(json.dumps(
        {"metrics": {"monitor/proxy_first": -0.9, "monitor/gold_first": 0.46, "monitor/kl_first": 0.0,
                     "monitor/proxy_last": 1.5, "monitor/gold_last": 0.5, "monitor/kl_last": 9.0,
                     "monitor/best_step": 8, "monitor/best_proxy": 0.2, "monitor/best_gold": 0.81,
                     "monitor/best_kl": 2.16, "train/updates": 20, "eval/samples": 100}}))
    for name, asr in (("sft", 1.0), ("ppo", 0.9)):
        (run / f"redteam_{name}").mkdir()
        (run / f"redteam_{name}" / "redteam.json").write_text(json.dumps(
            {"overall": {"asr": asr, "refusal_rate": 0.0, "non_answer_rate": 1 - asr, "over_refusal": 0.0,
                         "harmful": 60, "benign": 18}}))
    from heal.quickstart import before_after_table

    table = before_after_table(run)
    assert re.search(r"PubMedQA accuracy \(greedy answer\)\s+0\.300\s+0\.460\s+0\.810", table)
    # the PPO column is the kept update (best gold), not the last one
    assert re.search(r"proxy reward: learned reward model\s+–\s+-0\.900\s+0\.200", table)
    assert re.search(r"gold reward: rule:pubmedqa\s+–\s+0\.460\s+0\.810", table)
    assert "PPO = update 8 of 20, the best by the gold on 100 prompts" in table
    assert re.search(r"KL.*\s+–\s+0\.000\s+2\.160", table)
    assert re.search(r"attack success rate.*\s+–\s+1\.000\s+0\.900", table)
    assert re.search(r"non-answer rate.*\s+–\s+0\.000\s+0\.100", table)


PIPELINE_PRESETS = [p for p in sorted((REPO / "experiments" / "configs").glob("*.yaml"))
                    if "stages" in yaml.safe_load(p.read_text())]  # verb presets are parsed by each verb's tests


def test_the_shipped_pipeline_presets_are_there():
    names = {p.name for p in PIPELINE_PRESETS}
    assert {"quickstart.yaml", "pipeline_pubmedqa_qwen0.5b.yaml", "pipeline_mimic_bhc_llama8b_zero3.yaml"} <= names
    assert (REPO / "experiments/configs/quickstart.yaml").resolve() == (REPO / "src/heal/presets/quickstart.yaml")
    assert (REPO / "experiments/configs/align_smollm2.yaml").resolve() == (REPO / "src/heal/presets/align_smollm2.yaml")


@pytest.mark.parametrize("preset", PIPELINE_PRESETS, ids=lambda p: p.name)
def test_every_pipeline_preset_parses(preset):
    """Every stage's verb, keys and values are valid (inputs such as MIMIC files may live elsewhere)."""
    _, stages, _ = pipeline.load(preset)
    pipeline.validate(preset, stages, check_inputs=False)
    assert len(stages) >= 5


def test_a_stage_with_a_launcher_runs_as_its_child_process(tmp_path, capsys):
    """`launch:` runs `<launcher> -m heal.cli <verb> --config stages/<name>.yaml` (here plain Python, as
    `accelerate launch` or `torchrun` would be on GPUs)."""
    stages = json.loads(json.dumps(DATA_STAGES))
    stages["train_data"]["launch"] = sys.executable
    code, out, err = heal(capsys, "pipeline", write_config(tmp_path, stages))
    assert code == 0, err
    assert f"$ {sys.executable} -m heal.cli prep --config {tmp_path / 'run' / 'stages' / 'train_data.yaml'}" in out
    assert len((tmp_path / "run" / "data" / "train.jsonl").read_text().splitlines()) == 108

    stages["dev_data"]["launch"] = f"{sys.executable} -c 'import sys; sys.exit(3)'"  # a launcher that fails
    # how a stage is launched is not part of its fingerprint (the result is the same), so force the rerun
    code, _, err = heal(capsys, "pipeline", write_config(tmp_path, stages), "--force")
    assert_one_line_error(code, err, "stage dev_data (heal prep) failed", "exited with code 3")


def test_a_comma_separated_prompt_list_is_checked_path_by_path(tmp_path):
    """redteam reads several prompt files from one comma-separated flag: each must exist or come from a stage."""
    config = {"run_dir": str(tmp_path / "run"), "stages": {
        **json.loads(json.dumps(DATA_STAGES)),
        "red": {"verb": "redteam", "args": {"model_path": "heal-tiny", "attacks": "direct",
                                             "adversarial_prompts_path": "${train_data},${dev_data}"}}}}
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    _, stages, _ = pipeline.load(path)
    pipeline.validate(path, stages)  # both files are written by earlier stages
    config["stages"]["red"]["args"]["adversarial_prompts_path"] = "${train_data},/nope/prompts.csv"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    _, stages, _ = pipeline.load(path)
    with pytest.raises(HealError, match="/nope/prompts.csv does not exist"):
        pipeline.validate(path, stages)


# --- --jobs: independent stages side by side --------------------------------------------------------------------

def test_jobs_2_runs_independent_stages_side_by_side_once_what_they_read_is_done(tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    code, _, err = heal(capsys, "pipeline", write_config(one, DATA_STAGES))
    assert code == 0, err
    code, out, err = heal(capsys, "pipeline", write_config(two, DATA_STAGES), "--jobs", "2")
    assert code == 0, err
    run = two / "run"
    assert {name: s["status"] for name, s in state(run).items()} == \
        {name: s["status"] for name, s in state(one / "run").items()} == dict.fromkeys(DATA_STAGES, "done")
    for name in ("pqal.json", "folds.json", "train.jsonl", "dev.jsonl"):
        assert (run / "data" / name).read_text() == (one / "run" / "data" / name).read_text(), name
    assert (run / "report.html").exists()

    # train_data and dev_data read data's output: they start after it is done, then both at once (2 slots)
    data_done = out.index("[1/3] data (heal prep): done in")
    train_started = out.index(f"[2/3] train_data (heal prep) → {run / 'data' / 'train.jsonl'}: started, log "
                              f"{run / 'logs' / 'train_data.log'}")
    dev_started = out.index("[3/3] dev_data (heal prep) →")
    first_done_after = min(out.index("train_data (heal prep): done in"), out.index("dev_data (heal prep): done in"))
    assert data_done < train_started < dev_started < first_done_after
    log = (run / "logs" / "train_data.log").read_text()
    assert log.startswith(f"$ {sys.executable} -m heal.cli prep --config {run / 'stages' / 'train_data.yaml'}")
    assert "kept 108 records" in log

    # a rerun skips what is unchanged, and reruns what reads a changed stage's output
    mtime = (run / "data" / "train.jsonl").stat().st_mtime_ns
    code, out, err = heal(capsys, "pipeline", write_config(two, DATA_STAGES), "--jobs", "2")
    assert code == 0, err
    assert out.count("unchanged, skipped") == 3 and "started" not in out
    assert (run / "data" / "train.jsonl").stat().st_mtime_ns == mtime
    stages = json.loads(json.dumps(DATA_STAGES))
    stages["data"]["args"]["n"] = 60
    code, out, err = heal(capsys, "pipeline", write_config(two, stages), "--jobs", "2")
    assert code == 0, err
    assert "unchanged, skipped" not in out and out.count(": started, log") == 3
    assert len((run / "data" / "train.jsonl").read_text().splitlines()) == 54


def test_a_stage_needs_the_earlier_stages_it_names_or_whose_output_it_reads(tmp_path):
    run = tmp_path / "run"
    stages = json.loads(json.dumps({**DATA_STAGES, "sft": MODEL_STAGES["sft"]}))
    stages["dev_data"]["args"]["input_path"] = str(run / "data" / "pqal.json")  # data's output, named literally
    stages["other"] = {"verb": "prep", "args": {"dataset": "synthetic_pubmedqa", "n": 10,  # reads nothing earlier
                                                "output_path": "${run_dir}/other/pqal.json"}}
    stages["eval_sft"] = {"verb": "eval", "args": {"model_path": f"{run}/sft/checkpoint-4",  # inside sft's folder
                                                   "dataset_path": "${dev_data}"}}
    stages["red"] = {"verb": "redteam", "args": {"model_path": "heal-tiny",
                                                 "adversarial_prompts_path": "${train_data},${other}"}}
    path = write_config(tmp_path, stages)
    _, loaded, _ = pipeline.load(path)
    assert {s.name: s.needs for s in loaded}["dev_data"] == ()  # only placeholders are known before validate
    pipeline.validate(path, loaded)
    assert {s.name: s.needs for s in loaded} == {
        "data": (), "train_data": ("data",), "dev_data": ("data",), "sft": ("train_data",), "other": (),
        "eval_sft": ("dev_data", "sft"), "red": ("train_data", "other")}


def test_a_failed_stage_under_jobs_stops_new_starts_and_lets_the_running_ones_finish(tmp_path, capsys):
    stages = json.loads(json.dumps(DATA_STAGES))
    stages["train_data"]["args"]["fold"] = 12  # heal prep refuses it at run time, in a fraction of a second
    # dev_data runs beside it, held back 3 s by its launcher so that it is still running when train_data fails
    stages["dev_data"]["launch"] = f"sh -c 'sleep 3; exec \"$0\" \"$@\"' {sys.executable}"
    stages["red_train"] = {"verb": "redteam", "args": {"model_path": "heal-tiny", "attacks": "direct",
                                                       "adversarial_prompts_path": "${train_data}"}}
    stages["red_dev"] = {"verb": "redteam", "args": {"model_path": "heal-tiny", "attacks": "direct",
                                                     "adversarial_prompts_path": "${dev_data}"}}
    config = write_config(tmp_path, stages)
    code, out, err = heal(capsys, "pipeline", config, "--jobs", "2")
    run, log = tmp_path / "run", tmp_path / "run" / "logs" / "train_data.log"
    assert code == 2
    assert "heal prep: error: --fold 12" in err  # the failed stage's log, shown
    last = err.strip().splitlines()[-1]
    for needle in ("stage train_data (heal prep) failed", f"log {log}", f"resume with: heal pipeline {config}"):
        assert needle in last
    records = state(run)
    assert records["train_data"]["status"] == "failed"
    assert records["train_data"]["error"].startswith("heal prep: error: --fold 12")
    assert records["data"]["status"] == records["dev_data"]["status"] == "done"
    assert out.index("train_data (heal prep): failed") < out.index("dev_data (heal prep): done")
    # red_train reads the failed stage; red_dev was ready once dev_data finished, but nothing starts after a failure
    assert "red_train" not in records and "red_dev" not in records
    assert sorted(p.name for p in (run / "logs").iterdir()) == ["data.log", "dev_data.log", "train_data.log"]


def test_jobs_must_be_at_least_one(tmp_path, capsys):
    code, _, err = heal(capsys, "pipeline", write_config(tmp_path, DATA_STAGES), "--jobs", "0")
    assert_one_line_error(code, err, "--jobs 0: must be at least 1")
    assert not (tmp_path / "run").exists()


def test_each_child_gets_its_share_of_the_cores_and_gpus(monkeypatch):
    from heal.pipeline_jobs import child_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    env = child_env(1, 3, gpus=8)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "5"
    assert env["CUDA_VISIBLE_DEVICES"] == "1,4,7"
    assert "CUDA_VISIBLE_DEVICES" not in child_env(0, 3, gpus=2)  # fewer GPUs than jobs: left alone
    assert child_env(0, 32, gpus=0)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    env = child_env(1, 3, gpus=8)
    assert env["OMP_NUM_THREADS"] == "7" and env.get("MKL_NUM_THREADS") == os.environ.get("MKL_NUM_THREADS")
    assert env["CUDA_VISIBLE_DEVICES"] == "3"


CHILD_REPORTING_ITS_THREADS = """
import time, torch
from heal.pipeline_jobs import follow_thread_share
follow_thread_share()
seen = torch.get_num_threads()
print(seen, flush=True)
deadline = time.monotonic() + 60
while time.monotonic() < deadline and input() != "stop":  # one line from the test per expected change
    while torch.get_num_threads() == seen and time.monotonic() < deadline:
        time.sleep(0.01)
    seen = torch.get_num_threads()
    print(seen, flush=True)
"""


def test_the_thread_signal_never_kills_a_process_that_does_not_listen():
    import signal
    import subprocess

    from heal.pipeline_jobs import THREADS_SIGNAL

    # a child not listening yet, or no longer (handlers are reset while Python shuts down), or a launcher
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])
    process.send_signal(THREADS_SIGNAL)
    assert process.wait(30) == 0 and signal.getsignal(THREADS_SIGNAL) == signal.SIG_DFL


def test_a_child_applies_the_thread_counts_the_pipeline_sends(tmp_path, monkeypatch):
    import subprocess
    import time

    from heal.pipeline_jobs import THREADS_ENV, Child, share_cores

    threads_file = tmp_path / "sft"
    threads_file.write_text("3")  # written before the child listens (it started with 2): read when it starts to
    env = dict(os.environ, OMP_NUM_THREADS="2", **{THREADS_ENV: str(threads_file)})
    child = subprocess.Popen([sys.executable, "-c", CHILD_REPORTING_ITS_THREADS], env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "3"
        record = Child(stage=None, process=child, log=tmp_path / "log", slot=0, started=time.perf_counter(),
                       threads=3, threads_file=threads_file)
        monkeypatch.setattr("os.cpu_count", lambda: 4)
        for ways, threads in ((1, "4"), (2, "2")):  # alone: every core; beside another stage: half of them
            share_cores([record], ways)
            child.stdin.write("next\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == threads
        child.stdin.write("stop\n")
        child.stdin.flush()
        assert child.wait(30) == 0
    finally:
        child.kill()


def test_running_stages_share_the_cores_only_while_nothing_else_can_start(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from heal import pipeline_jobs

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    shares = []
    monkeypatch.setattr(pipeline_jobs, "share_cores",
                        lambda running, ways: shares.append((sorted(c.stage.name for c in running), ways)))
    stages = [SimpleNamespace(name="long", needs=set()), SimpleNamespace(name="short", needs=set()),
              SimpleNamespace(name="after_long", needs={"long"})]
    seconds = {"long": 1.5, "short": 0.2, "after_long": 0.2}

    def begin(stage):
        return [sys.executable, "-c", f"import time; time.sleep({seconds[stage.name]})"], tmp_path / f"{stage.name}.log"

    assert pipeline_jobs.run_side_by_side(stages, 2, begin, lambda *_: None) is None
    distinct = [share for i, share in enumerate(shares) if i == 0 or shares[i - 1] != share]
    # side by side: a 1/2 share each; once "short" ends and "after_long" waits for "long", "long" gets them all
    assert distinct == [(["long", "short"], 2), (["long"], 1), (["after_long"], 1)]


PIPELINE_OF_SLEEPERS = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
from heal.pipeline_jobs import run_side_by_side

out = Path(sys.argv[1])
ended = []

def begin(stage):
    sleeper = f"import os, time; open({str(out / stage.name)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    return [sys.executable, "-c", sleeper], out / f"{stage.name}.log"

def end(stage, code, seconds, log):
    ended.append([stage.name, code])
    (out / "ended.json").write_text(json.dumps(ended))

try:
    run_side_by_side([SimpleNamespace(name=n, needs=set()) for n in ("a", "b")], 2, begin, end)
except KeyboardInterrupt:
    sys.exit(143)
"""


def test_sigterm_to_the_pipeline_stops_its_children_and_records_them(tmp_path):
    import signal
    import subprocess
    import time

    pipeline_process = subprocess.Popen([sys.executable, "-c", PIPELINE_OF_SLEEPERS, str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / n).exists() and (tmp_path / n).read_text() for n in "ab"):
            assert time.monotonic() < deadline and pipeline_process.poll() is None
            time.sleep(0.05)
        pids = [int((tmp_path / n).read_text()) for n in "ab"]
        pipeline_process.send_signal(signal.SIGTERM)
        assert pipeline_process.wait(30) == 143
    finally:
        pipeline_process.kill()
    assert sorted(json.loads((tmp_path / "ended.json").read_text())) == [["a", None], ["b", None]]
    for pid in pids:  # no child outlives the pipeline
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_quickstart_passes_jobs_through(tmp_path, capsys):
    code, out, err = heal(capsys, "quickstart", "--output_dir", tmp_path / "qs", "--stages", "data,train_data,dev_data",
                          "--jobs", "2")
    assert code == 0, err
    assert out.count(": started, log") == 3 and "[4/12] sft (heal sft): not selected" in out
    assert sorted(p.name for p in (tmp_path / "qs" / "logs").iterdir()) == ["data.log", "dev_data.log",
                                                                              "train_data.log"]
    assert set(state(tmp_path / "qs")) == {"data", "train_data", "dev_data"}
