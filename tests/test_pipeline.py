"""`heal pipeline` and `heal quickstart`: stages chained in one run folder, skipped when unchanged, resumable after a
failure, validated before anything runs; the run report; every preset parses."""

from __future__ import annotations

import json
import re
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
        {"metrics": {"eval_before/score": 0.46, "eval/score": 0.81, "objective/kl_last": 2.16}}))
    for name, asr in (("sft", 1.0), ("ppo", 0.9)):
        (run / f"redteam_{name}").mkdir()
        (run / f"redteam_{name}" / "redteam.json").write_text(json.dumps(
            {"overall": {"asr": asr, "refusal_rate": 0.0, "non_answer_rate": 1 - asr, "over_refusal": 0.0,
                         "harmful": 60, "benign": 18}}))
    from heal.quickstart import before_after_table

    table = before_after_table(run)
    assert re.search(r"PubMedQA accuracy \(greedy answer\)\s+0\.300\s+0\.460\s+0\.810", table)
    assert re.search(r"mean reward.*\s+–\s+0\.460\s+0\.810", table)
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
    import sys

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
