"""`heal label`: RLAIF labelling end to end (policy samples + judge), resume, agreement, bad input."""

import json

import pytest
from helpers import SHARED, assert_one_line_error, files_in, heal
from openai_stub import Behaviour, free_port, make_app, serve

from heal.data import io

HH = SHARED / "preferences" / "hh_rlhf_harmless_base_test_medical_subset.jsonl"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HEAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def label_args(sft_tiny_run, out, *extra):
    return ["label", "--model_name", sft_tiny_run["dir"], "--dataset_path", sft_tiny_run["data"]["dev"],
            "--output_path", out, "--max_new_tokens", "24", "--progress", "false", "--max_prompts", "8", *extra]


def test_label_with_a_local_hf_judge_writes_pairs_with_judge_metadata(sft_tiny_run, tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    code, stdout, err = heal(capsys, *label_args(sft_tiny_run, out, "--judge", f"hf:{sft_tiny_run['dir']}"))
    assert code == 0, err
    pairs = io.read_records(out)
    assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
    for pair in pairs:
        assert pair["judge"].startswith("hf:") and 0.5 < pair["p_chosen"] <= 1.0
        mean = (pair["p_a_first"] + pair["p_a_second"]) / 2  # both orders averaged
        assert pair["p_chosen"] == pytest.approx(max(mean, 1 - mean), abs=1e-5)
        assert pair["label"] in ("yes", "no", "maybe")  # record columns travel with the pair
    assert io.read_metadata(out)["summary"]["pairs_written"] == len(pairs)
    assert not (tmp_path / "pairs.jsonl.candidates.partial.jsonl").exists()


def test_label_through_http_judge_and_rerun_makes_no_new_calls(sft_tiny_run, tmp_path, capsys):
    behaviour = Behaviour()
    with serve(make_app(str(sft_tiny_run["dir"]), behaviour)) as url:
        args = label_args(sft_tiny_run, tmp_path / "p.jsonl", "--judge", "openai:tiny-judge", "--judge_base_url", url)
        assert heal(capsys, *args)[0] == 0
        paid = behaviour.requests
        judged = io.read_metadata(tmp_path / "p.jsonl")["summary"]["pairs_judged"]
        assert judged >= 6 and paid == 2 * judged  # ≤ 1 pair per prompt (identical samples make none), 2 orders
        code, stdout, _ = heal(capsys, *args)
        assert code == 0 and behaviour.requests == paid and "judge calls 0" in stdout


def test_crashed_labelling_resumes_without_paying_twice(sft_tiny_run, tmp_path, capsys):
    broken = Behaviour(fail_after=6)
    out = tmp_path / "p.jsonl"
    with serve(make_app(str(sft_tiny_run["dir"]), broken)) as url:
        args = label_args(sft_tiny_run, out, "--judge", "openai:tiny-judge", "--judge_base_url", url,
                          "--judge_max_retries", "0", "--judge_concurrency", "1")
        code, _, err = heal(capsys, *args)
    assert_one_line_error(code, err, "HTTP 500", "rerun to resume")
    assert not out.exists() and (tmp_path / "p.jsonl.candidates.partial.jsonl").exists()
    healthy = Behaviour()
    with serve(make_app(str(sft_tiny_run["dir"]), healthy)) as url:
        args[args.index("--judge_base_url") + 1] = url
        assert heal(capsys, *args)[0] == 0
    judged = io.read_metadata(out)["summary"]["pairs_judged"]
    assert healthy.requests == 2 * judged - 6 and len(io.read_records(out)) >= 1


def test_agreement_reports_agreement_and_position_bias(tmp_path, capsys):
    out = tmp_path / "agreement.json"
    code, stdout, err = heal(capsys, "label", "--agreement", HH, "--judge", "rule:refusal", "--output_path", out,
                             "--progress", "false")
    assert code == 0, err
    report = json.loads(out.read_text())
    assert report["pairs"] == 102 and 0.0 <= report["agreement_ties_half"] <= 1.0
    assert report["position_bias_rate"] == 0.0  # a rule cannot be swayed by order
    assert "agreement with humans" in stdout


def test_agreement_of_a_position_biased_model_judge(sft_tiny_run, tmp_path, capsys):
    out = tmp_path / "agreement.json"
    code, _, err = heal(capsys, "label", "--agreement", HH, "--judge", f"hf:{sft_tiny_run['dir']}", "--output_path",
                        out, "--max_prompts", "20", "--progress", "false")
    assert code == 0, err
    report = json.loads(out.read_text())
    # an untrained-for-judging tiny model mostly follows position: the rate is measured, between 0 and 1
    assert report["pairs"] == 20 and 0.0 <= report["position_bias_rate"] <= 1.0
    assert report["judge_calls"] == 40


@pytest.mark.parametrize("case", ["unreachable", "missing_judge_model", "bad_spec", "no_prompt_column",
                                  "one_candidate", "api_model"])
def test_label_bad_input(sft_tiny_run, tmp_path, capsys, case):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "pairs.jsonl"
    args = label_args(sft_tiny_run, out)
    needle = {"unreachable": "unreachable", "missing_judge_model": "does not exist", "bad_spec": "unknown judge",
              "no_prompt_column": "prompt", "one_candidate": "at least 2", "api_model": "API models"}[case]
    if case == "unreachable":
        args += ["--judge", "openai:x", "--judge_base_url", f"http://127.0.0.1:{free_port()}/v1",
                 "--judge_max_retries", "0"]
    elif case == "missing_judge_model":
        args += ["--judge", f"hf:{tmp_path / 'no_such_model'}"]
    elif case == "bad_spec":
        args += ["--judge", "gpt-4"]
    elif case == "no_prompt_column":
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"question": "q"}\n')
        args[args.index("--dataset_path") + 1] = str(bad)
        args += ["--judge", "rule:pubmedqa"]
    elif case == "one_candidate":
        args += ["--judge", "rule:pubmedqa", "--num_candidates", "1"]
    else:
        args[args.index("--model_name") + 1] = "gpt-4"
        args += ["--judge", "rule:pubmedqa"]
    code, _, err = heal(capsys, *args)
    assert_one_line_error(code, err, needle)
    assert files_in(out_dir) in ([], ["pairs.jsonl.candidates.partial.jsonl"])
    assert not out.exists()
