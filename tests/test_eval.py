"""`heal eval`: batched generation and scoring are exact, metrics files agree with the per-item predictions, the
seed's entry point works, and bad input fails with one line and no results."""

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, SHARED, assert_one_line_error, files_in, heal
from sklearn.metrics import f1_score

from heal.data.pubmedqa import to_record
from heal.data.synthetic import make_pubmedqa
from heal.models.generate import HFBackend
from heal.eval.qa import CHOICES

QUIET = ("--progress", "false")


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from heal.models.loading import load_policy

    model, tokenizer, _ = load_policy(str(tiny_model_dir))
    return HFBackend(model, tokenizer, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def prompts(backend):
    records = [to_record(k, v) for k, v in make_pubmedqa(5, seed=2).items()]
    texts = [backend.render(r["prompt"]) for r in records]
    texts[0] = backend.render("Short?")  # very different lengths: left padding must not change any answer
    return texts


def test_shared_prefix_loglikelihood_equals_full_sequence_scoring(backend, prompts):
    choices = list(CHOICES.values())
    shared = backend.choice_loglikelihoods(prompts, choices)
    for text, row in zip(prompts, shared):
        assert row == pytest.approx([backend.score_full(text, c) for c in choices], abs=1e-3)


def test_batched_generation_equals_one_prompt_at_a_time(backend, prompts):
    batched = backend.generate(prompts, max_new_tokens=6)
    backend.batch_size = 1
    try:
        single = backend.generate(prompts, max_new_tokens=6)
    finally:
        backend.batch_size = 4
    assert [g.text for g in batched] == [g.text for g in single]
    assert all(g.completion_tokens <= 6 and g.finish_reason in ("stop", "length") for g in batched)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_generation_and_scoring_from_one_pass_equal_the_two_apart(backend, prompts, batch_size):
    choices = list(CHOICES.values()) + ["Yes, it does."]  # choices of 1 to several tokens
    backend.batch_size = batch_size
    try:
        outs, scores = backend.generate_and_score(prompts, choices, max_new_tokens=6)
        apart = backend.generate(prompts, max_new_tokens=6)
    finally:
        backend.batch_size = 4
    assert [(g.text, g.completion_tokens, g.finish_reason) for g in outs] == \
        [(g.text, g.completion_tokens, g.finish_reason) for g in apart]
    for text, row in zip(prompts, scores):
        assert row == pytest.approx([backend.score_full(text, c) for c in choices], abs=1e-3)


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pubmedqa_eval_writes_consistent_results(capsys, sft_tiny_run, tmp_path):
    out = tmp_path / "results"
    code, stdout, err = heal(capsys, "eval", "--model_path", sft_tiny_run["dir"], "--dataset_path",
                             sft_tiny_run["data"]["test"], "--output_dir", out, "--max_samples", "12", "--robustness",
                             "--max_new_tokens", "12", *QUIET)
    assert code == 0, err
    assert files_in(out) == [".heal_results.json", "confusion_generate.png", "confusion_loglikelihood.png", "metrics.json",
                             "predictions.jsonl", "report.md", "resolved_config.yaml", "robustness.png"]
    result, items = json.loads((out / "metrics.json").read_text()), _read_jsonl(out / "predictions.jsonl")
    assert len(items) == result["n"] == 12
    gold = [i["label"] for i in items]
    for mode in ("generate", "loglikelihood"):
        preds = [i[f"{mode}/prediction"] for i in items]
        m = result["metrics"]
        assert m[f"pubmedqa/{mode}/accuracy"] == pytest.approx(sum(p == g for p, g in zip(preds, gold)) / 12)
        assert m[f"pubmedqa/{mode}/macro_f1"] == pytest.approx(
            f1_score(gold, preds, labels=["yes", "no", "maybe"], average="macro", zero_division=0))
        assert sum(map(sum, result["confusion"][mode])) == 12
    # The SFT model answers in the format it was trained on, so eval (same prompt formatter) can parse it.
    assert result["metrics"]["pubmedqa/generate/unparsed_rate"] < 0.5
    robust = result["robustness"]
    clean = [i["loglikelihood/prediction"] for i in items]
    for name, row in robust.items():
        perturbed = [i[f"robustness/{name}/prediction"] for i in items]
        assert row["consistency"] == pytest.approx(sum(a == b for a, b in zip(clean, perturbed)) / 12)
        assert row["drop"] == pytest.approx(result["metrics"]["pubmedqa/loglikelihood/accuracy"] - row["accuracy"])
    config = yaml.safe_load((out / "resolved_config.yaml").read_text())
    assert config["robustness"] is True and config["max_samples"] == 12
    assert "| generate |" in (out / "report.md").read_text()
    # Rerun into the same folder without robustness: its plot from the first run must not linger.
    code, _, err = heal(capsys, "eval", "--model_path", sft_tiny_run["dir"], "--dataset_path",
                        sft_tiny_run["data"]["test"], "--output_dir", out, "--max_samples", "4", "--pubmedqa_modes",
                        "loglikelihood", *QUIET)
    assert code == 0, err
    assert files_in(out) == [".heal_results.json", "confusion_loglikelihood.png", "metrics.json",
                             "predictions.jsonl", "report.md", "resolved_config.yaml"]


def test_seed_command_runs_eval_verbatim(tiny_model_dir, sft_tiny_run, tmp_path):
    out = tmp_path / "seed"
    proc = subprocess.run([sys.executable, str(REPO / "src" / "evaluation" / "evaluate.py"), "--model_path",
                           str(tiny_model_dir), "--dataset_path", str(sft_tiny_run["data"]["dev"]), "--output_dir",
                           str(out), "--max_samples", "4", "--pubmedqa_modes", "loglikelihood", *QUIET],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "metrics.json").read_text())["metrics"]["pubmedqa/loglikelihood/n"] == 4


def test_default_results_folder_is_under_experiments_results(capsys, tiny_model_dir, sft_tiny_run, tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = heal(capsys, "eval", "--model_path", tiny_model_dir, "--dataset_path", sft_tiny_run["data"]["dev"],
                        "--max_samples", "3", "--pubmedqa_modes", "loglikelihood", *QUIET)
    assert code == 0, err
    folder = tmp_path / "experiments" / "results" / "eval-heal-tiny-random-pubmedqa_dev"
    assert (folder / "metrics.json").is_file() and not list(folder.glob(".staging*"))


def test_summary_eval_on_aci_bench(capsys, tiny_model_dir, tmp_path):
    records = tmp_path / "aci.jsonl"
    assert heal(capsys, "prep", "--dataset", "aci_bench", "--input_path",
                SHARED / "clinical_notes" / "aci_bench" / "valid.csv", "--output_path", records)[0] == 0
    out = tmp_path / "results"
    code, _, err = heal(capsys, "eval", "--model_path", tiny_model_dir, "--dataset_path", records, "--output_dir", out,
                        "--max_samples", "3", "--max_new_tokens", "16", "--bertscore_model", tiny_model_dir,
                        "--embedding_model", tiny_model_dir, *QUIET)
    assert code == 0, err
    result, items = json.loads((out / "metrics.json").read_text()), _read_jsonl(out / "predictions.jsonl")
    m = result["metrics"]
    assert m["summary/task"] == "aci" and len(items) == 3
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    recomputed = [scorer.score(i["reference"], i["prediction"])["rougeL"].fmeasure for i in items]
    assert m["summary/rougeL"] == pytest.approx(sum(recomputed) / 3, abs=1e-4)
    assert m["summary/length/reference/mean"] == pytest.approx(sum(i["reference_words"] for i in items) / 3)
    assert -1.0 <= m["summary/bertscore/f1"] <= 1.0 and -1.0 <= m["summary/embedding_similarity"] <= 1.0
    assert result["truncated_prompts"] == 3  # whole dialogues exceed heal-tiny's 1024 positions: cut from the left
    assert {"lengths.png", "rouge.png", "report.md"} <= set(files_in(out))


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("case, needle", [
    ("missing_label", "missing column(s) label"),
    ("empty", "the file is empty"),
    ("unlabelled", "row 2 has label"),
    ("robustness_without_context", "missing column(s) question, context"),
    ("bad_model", "model folder does not exist"),
    ("unknown_perturbation", "--perturbations: unknown jitter"),
    ("vllm_missing", "--backend vllm: vLLM is not installed"),
    ("output_is_model_folder", "is a model or training-run folder"),
])
def test_bad_input_is_one_line_exit_2_and_no_results(capsys, tmp_path, tiny_model_dir, case, needle):
    data = _write(tmp_path / "pqa.csv", "id,prompt,label,task\n1,Q?,yes,pubmedqa\n2,Q2?,no,pubmedqa\n")
    model, extra = str(tiny_model_dir), []
    if case == "missing_label":
        data = _write(tmp_path / "pqa.csv", "id,prompt,completion,task\n1,Q?,Yes.,pubmedqa\n")
    elif case == "empty":
        data = _write(tmp_path / "pqa.csv", "")
    elif case == "unlabelled":
        data = _write(tmp_path / "pqa.csv", "id,prompt,label,task\n1,Q?,yes,pubmedqa\n2,Q2?,,pubmedqa\n")
    elif case == "robustness_without_context":
        extra = ["--robustness"]
    elif case == "bad_model":
        model = str(tmp_path / "no" / "such" / "model")
    elif case == "unknown_perturbation":
        extra = ["--robustness", "--perturbations", "typos,jitter"]
    elif case == "vllm_missing":
        if importlib.util.find_spec("vllm") is not None:
            pytest.skip("vLLM is installed here")
        extra = ["--backend", "vllm"]
    out = tmp_path / "results"
    if case == "output_is_model_folder":
        shutil.copytree(tiny_model_dir, out)
    before = files_in(out) if out.exists() else None
    code, _, err = heal(capsys, "eval", "--model_path", model, "--dataset_path", data, "--output_dir", out, *extra,
                        *QUIET)
    assert_one_line_error(code, err, needle)
    assert (files_in(out) if out.exists() else None) == before
