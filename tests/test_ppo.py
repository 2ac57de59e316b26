"""`heal ppo` end to end on heal-tiny: it learns (rule reward and reward model, full and LoRA), the judge's score is
the reward (d-RLAIF), its artifacts, its presets, the seed command, and one-line errors for bad input.

The SFT policy of the `sft_tiny_run` fixture answers "Yes." to every synthetic PubMedQA question. The learning tests
give it a reward that wants something else — the gold decision on questions whose answer is "no" (rule:pubmedqa), or
a reward model trained to prefer "No." — so a working PPO must change its greedy answer within a few updates.
"""

import json
import math
import shutil
import subprocess
import sys

import pytest
from helpers import REPO, assert_one_line_error, heal

from heal.data import io
from heal.models import run_folder
from heal.rl.rewards import sequence_inputs

# every metric a PPO update logs (heal.ppo.report)
UPDATE_KEYS = {"objective/kl", "objective/entropy", "objective/non_score_reward", "objective/rlhf_reward",
               "objective/scores", "objective/kl_coef", "policy/approxkl", "policy/clipfrac", "policy/entropy",
               "loss/policy", "loss/value", "val/clipfrac", "val/ratio", "val/ratio_var", "val/explained_var",
               "val/num_eos_tokens", "response/eos_rate", "response/length", "train/learning_rate", "train/episode"}
FAST = ("--disable_tqdm", "true", "--max_prompt_length", "128", "--max_eval_samples", "20")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def no_prompts(tmp_path_factory, pubmedqa_sft_data):
    """Synthetic PubMedQA records whose gold decision is "no": training prompts and held-out prompts."""
    folder = tmp_path_factory.mktemp("no_prompts")
    train = [r for r in io.read_records(pubmedqa_sft_data["train"]) if r["label"] == "no"]
    held = [r for part in ("dev", "test") for r in io.read_records(pubmedqa_sft_data[part]) if r["label"] == "no"]
    paths = {"train": folder / "no_train.csv", "eval": folder / "no_eval.csv"}
    io.write_records(paths["train"], train)
    io.write_records(paths["eval"], held)
    return paths


def _rows(folder):
    return [r for r in run_folder.read_metrics(folder) if "objective/scores" in r]


def test_rule_reward_teaches_the_policy_the_rewarded_answer(sft_tiny_run, no_prompts, tmp_path, capsys):
    out = tmp_path / "ppo_rule"
    code, stdout, err = heal(capsys, "ppo", "--model_name", sft_tiny_run["dir"], "--reward", "rule:pubmedqa",
                             "--dataset_path", no_prompts["train"], "--eval_dataset_path", no_prompts["eval"],
                             "--output_dir", out, "--response_length", "8", "--max_steps", "10",
                             "--per_device_train_batch_size", "16", *FAST)
    assert code == 0, err
    run = run_folder.read_run(out)
    m = run["metrics"]
    # greedy answers on held-out "no" questions: "Yes." (accuracy 0) before, "No." after
    assert m["eval_before/accuracy"] <= 0.2 and m["eval/accuracy"] >= 0.8
    assert m["eval/score"] == pytest.approx(m["eval/accuracy"])  # the rule's score is the decision's correctness
    assert 0 < m["objective/kl_last"] < 10  # the policy moved, and the KL penalty kept it near the reference
    rows = _rows(out)
    assert [r["step"] for r in rows] == list(range(1, 11))
    mean = lambda part: sum(r["objective/scores"] for r in part) / len(part)  # noqa: E731
    assert mean(rows[5:]) > mean(rows[:5]) + 0.1  # the sampled reward rose during training too
    assert all(UPDATE_KEYS <= set(r) for r in rows)
    assert all(r["objective/kl_coef"] == 0.05 for r in rows)  # fixed β by default
    assert rows[0]["objective/kl"] == pytest.approx(0.0, abs=1e-4)  # π = π_ref before the first step
    assert "held-out accuracy (greedy): 0.0" in stdout
    assert "eval/sampled_accuracy" in m and m["eval/sampled_accuracy"] > m["eval_before/sampled_accuracy"]
    _assert_artifacts(out, "rule:pubmedqa", "k1")


def _assert_artifacts(out, reward: str, estimator: str):
    from transformers import AutoModelForCausalLM

    run = run_folder.read_run(out)
    assert run["status"] == "complete"
    for name in ("config.json", "model.safetensors", "README.md", "resolved_config.yaml", "metrics.jsonl",
                 "ppo_curves.png", "samples.jsonl", "eval_answers.jsonl", "tokenizer.json"):
        assert (out / name).exists(), name
    assert not (out / run_folder.STAGING).exists()
    card = (out / "README.md").read_text()
    assert "stage | `ppo`" in card and reward in card
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    config = (out / "resolved_config.yaml").read_text()
    assert f"kl_estimator: {estimator}" in config and "num_ppo_epochs: 4" in config
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert samples and {"step", "prompt", "response", "score"} <= set(samples[0])


def test_reward_model_with_lora_raises_its_score(sft_tiny_run, reward_tiny_run, tmp_path, capsys):
    out = tmp_path / "ppo_rm_lora"
    code, _, err = heal(capsys, "ppo", "--model_name", sft_tiny_run["dir"], "--reward_model_path",
                        reward_tiny_run["dir"], "--dataset_path", sft_tiny_run["data"]["train"],
                        "--eval_dataset_path", sft_tiny_run["data"]["dev"], "--output_dir", out,
                        "--response_length", "8", "--max_steps", "30", "--per_device_train_batch_size", "16",
                        "--use_peft", "--lora_r", "16", "--lora_alpha", "32", "--learning_rate", "3e-3",
                        "--kl_estimator", "k3", *FAST)
    assert code == 0, err
    run = run_folder.read_run(out)
    m = run["metrics"]
    # raw scores. Trained on 40 prompts, this reward model also scores text it never saw above "Yes.": PPO finds
    # whatever scores highest (reward hacking: what the KL penalty and missing_eos_penalty are there to limit).
    # Measured gain: +0.44 with one torch thread, more with two (the run's samples depend on the summation order);
    # an untrained policy's greedy score does not move at all
    assert m["eval/score"] > m["eval_before/score"] + 0.25
    rows = _rows(out)
    # training scores (normalised, sampled at temperature 1) are noisier than the held-out greedy score above
    assert sum(r["objective/scores"] for r in rows[-5:]) / 5 > rows[0]["objective/scores"] + 0.1
    answers = [json.loads(line) for line in (out / "eval_answers.jsonl").read_text().splitlines()]
    before = [a["text"] for a in answers if a["when"] == "eval_before" and not a["sampled"]]  # greedy answers
    after = [a["text"] for a in answers if a["when"] == "eval" and not a["sampled"]]
    assert len(before) == len(after) == 20 and before.count("Yes.") >= 16  # the SFT policy's answer
    assert sum(text != "Yes." for text in after) >= 16  # PPO moved the greedy answers away from it
    assert all(r["objective/kl"] >= -1e-6 for r in _rows(out))  # k3 is never negative
    assert run["value_init"] == f"the reward model {reward_tiny_run['dir']}"  # Huang et al.: value from the RM
    assert "LoRA (r=16" in run["weights"]
    _assert_artifacts(out, "reward model", "k3")
    assert "LoRA" in (out / "README.md").read_text()


def test_the_judges_score_is_the_reward(sft_tiny_run, no_prompts, tmp_path, capsys, monkeypatch):
    """d-RLAIF: a local HF judge scores every response; the logged rewards are exactly its scores."""
    monkeypatch.setenv("HEAL_CACHE_DIR", str(tmp_path / "cache"))
    judge = f"hf:{sft_tiny_run['dir']}"
    out = tmp_path / "ppo_judge"
    code, _, err = heal(capsys, "ppo", "--model_name", sft_tiny_run["dir"], "--reward", f"judge:{judge}",
                        "--dataset_path", no_prompts["train"], "--eval_split_size", "0", "--output_dir", out,
                        "--response_length", "6", "--max_steps", "2", "--per_device_train_batch_size", "8",
                        "--num_sample_generations", "2", "--missing_eos_penalty", "0.5", *FAST)
    assert code == 0, err
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    from heal.feedback.judges import JudgeItem, make_judge

    again = make_judge(judge).score([JudgeItem(prompt=s["prompt"], a=s["response"]) for s in samples])
    assert all(0.0 <= s <= 1.0 for s in again)
    # the reward is the judge's score, less the missing-EOS penalty for a response that never stopped
    expected = [score - (0.0 if s["stopped"] else 0.5) for s, score in zip(samples, again)]
    assert [s["score"] for s in samples] == pytest.approx(expected, abs=1e-5)
    assert any(not s["stopped"] for s in samples)  # 6 tokens: some responses are cut off
    assert "an AI judge's score" in (out / "README.md").read_text()


def test_seed_command_verbatim_takes_its_prompts_from_the_reward_model(sft_tiny_run, reward_tiny_run, tmp_path):
    """`python src/training/ppo.py --model_name <sft> --reward_model_path models/reward_model/pubmedqa --output_dir
    models/policy_model/pubmedqa_ppo`: no --dataset_path, so the prompts are those the reward model was trained on."""
    shutil.copytree(reward_tiny_run["dir"], tmp_path / "models/reward_model/pubmedqa")
    command = [sys.executable, str(REPO / "src/training/ppo.py"), "--model_name", str(sft_tiny_run["dir"]),
               "--reward_model_path", "models/reward_model/pubmedqa", "--output_dir",
               "models/policy_model/pubmedqa_ppo"]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "models/policy_model/pubmedqa_ppo"
    run = run_folder.read_run(out)
    assert run["status"] == "complete"
    assert run["data"]["prompts"] == str(reward_tiny_run["pairs"])
    assert run["data"]["train_prompts"] + run["data"]["eval_prompts"] == 40
    # TRL's defaults: 1 epoch over 36 prompts in batches of 16 → 3 updates; responses of 53 tokens
    assert run["metrics"]["train/updates"] == 3 and run["batch"]["rollouts_per_update"] == 16
    assert "heal ppo: 3 updates" in done.stdout


def test_presets_and_trl_knob_names_parse(tmp_path):
    from heal.ppo.train import make_parser

    presets = sorted((REPO / "experiments/configs").glob("ppo_*.yaml"))
    assert presets
    for preset in presets:
        script, training, model_args = make_parser().parse(["--config", str(preset)])
        assert training.num_ppo_epochs >= 1 and model_args.model_name_or_path
    trl_style = tmp_path / "trl_ppo.yaml"  # a TRL 1.12 PPOConfig carried over as is
    trl_style.write_text("sft_model_path: models/sft\nreward_model_path: models/rm\nlearning_rate: 3.0e-6\n"
                         "num_ppo_epochs: 2\nnum_mini_batches: 2\nresponse_length: 40\nmissing_eos_penalty: 1.0\n"
                         "kl_coef: 0.1\nkl_estimator: k3\ncliprange: 0.1\ncliprange_value: 0.3\nvf_coef: 0.2\n"
                         "gamma: 0.99\nlam: 0.9\nwhiten_rewards: true\ntemperature: 0.9\nstop_token: eos\n"
                         "total_episodes: 1000\nlocal_rollout_forward_batch_size: 8\nper_device_train_batch_size: 4\n"
                         "gradient_accumulation_steps: 2\n")
    _, training, _ = make_parser().parse(["--config", str(trl_style), "--kl_coef", "0.2"])
    assert (training.num_ppo_epochs, training.kl_estimator, training.whiten_rewards) == (2, "k3", True)
    assert training.kl_coef == 0.2 and training.sft_model_path == "models/sft"  # flags override the file


@pytest.mark.parametrize("argv, needles", [
    (["--reward", "rule:pubmedqa", "--dataset_path", "{train}"], ["--model_name is required"]),
    (["--model_name", "gpt-4", "--reward", "rule:pubmedqa"], ["API models cannot be fine-tuned"]),
    (["--model_name", "heal-tiny", "--reward", "rule:pubmedqa"], ["run `heal sft"]),
    (["--model_name", "{sft}"], ["no reward", "--reward_model_path"]),
    (["--model_name", "{sft}", "--reward", "vibes"], ["--reward vibes", "judge:<spec>"]),
    (["--model_name", "{sft}", "--reward", "rule:kindness"], ["unknown rule"]),
    (["--model_name", "{sft}", "--reward_model_path", "{tmp}/nowhere"], ["does not exist"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa"], ["--dataset_path is required"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{tmp}/missing.csv"], ["not found"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{pairs_without_prompt}"],
     ["missing column(s) prompt"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{train}", "--temperature", "0"],
     ["--temperature 0"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{train}", "--num_mini_batches", "3"],
     ["--num_mini_batches 3 must divide"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{train}", "--stop_token", "eos",
      "--stop_token_id", "2"], ["exclusive"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{train}", "--kl_estimator", "k2"],
     ["invalid choice"]),
    (["--model_name", "{sft}", "--reward_model_path", "{sft}", "--dataset_path", "{train}"],
     ["not a sequence classifier", "LlamaForCausalLM", "heal reward"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{long_prompts}"],
     ["1 prompt(s) longer than", "--max_prompt_length"]),
    (["--model_name", "{sft}", "--reward", "rule:pubmedqa", "--dataset_path", "{train}", "--max_prompt_length",
      "100000"], ["exceed the model's"]),
    (["--model_name", "{sft}", "--reward", "rule:refusal", "--dataset_path", "{train}", "--constitution",
      "{tmp}/none.yaml"], ["none.yaml: constitution file not found", "over-refusal-costs"]),
])
def test_bad_input_is_one_line_and_exit_2(argv, needles, sft_tiny_run, tmp_path, capsys):
    bad = tmp_path / "no_prompt.jsonl"
    io.write_records(bad, [{"question": "q", "chosen": "a", "rejected": "b"}])
    long_prompts = tmp_path / "long.jsonl"
    records = io.read_records(sft_tiny_run["data"]["train"])[:8]
    io.write_records(long_prompts, records + [{**records[0], "prompt": "Question: why? " * 3000}])
    values = {"sft": str(sft_tiny_run["dir"]), "train": str(sft_tiny_run["data"]["train"]), "tmp": str(tmp_path),
              "pairs_without_prompt": str(bad), "long_prompts": str(long_prompts)}
    out = tmp_path / "out"
    try:
        code, _, err = heal(capsys, "ppo", *[a.format(**values) for a in argv], "--output_dir", out)
    except SystemExit as e:  # argparse rejects bad choices itself (HealParser: one line, exit 2)
        code, err = e.code, capsys.readouterr().err
    assert_one_line_error(code, err, *needles)
    assert not (out / "config.json").exists()


def test_a_reward_model_with_another_tokenizer_scores_the_decoded_text(sft_tiny_run, tmp_path, capsys):
    """Item 10: an encoder reward model (its own WordPiece tokenizer) cannot read the policy's ids; each response is
    decoded, re-tokenised as in reward training and scored, and the value model starts from the policy."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    from heal.reward.scoring import RewardScorer

    records = io.read_records(sft_tiny_run["data"]["train"])
    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer, raw.pre_tokenizer = normalizers.BertNormalizer(), pre_tokenizers.BertPreTokenizer()
    raw.train_from_iterator([r["prompt"] + " " + r["completion"] for r in records], trainers.WordPieceTrainer(
        vocab_size=600, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                        sep_token="[SEP]", mask_token="[MASK]", eos_token="[SEP]")
    encoder = BertForSequenceClassification(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                                       num_attention_heads=2, intermediate_size=64, num_labels=1,
                                                       pad_token_id=0, max_position_embeddings=512))
    rm = tmp_path / "encoder_rm"
    encoder.save_pretrained(rm)
    tokenizer.save_pretrained(rm)
    out = tmp_path / "ppo_encoder_rm"
    code, _, err = heal(capsys, "ppo", "--model_name", sft_tiny_run["dir"], "--reward_model_path", rm,
                        "--dataset_path", sft_tiny_run["data"]["train"], "--eval_split_size", "0", "--output_dir", out,
                        "--response_length", "6", "--max_steps", "1", "--per_device_train_batch_size", "8",
                        "--num_sample_generations", "1", *FAST)
    assert code == 0, err
    run = run_folder.read_run(out)
    assert "tokenizer differs" in run["value_init"]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    again = RewardScorer(str(rm)).score([s["prompt"] for s in samples], [s["response"] for s in samples])
    assert [s["score"] for s in samples] == pytest.approx(again, abs=1e-5)


def test_a_missing_tracker_package_is_a_one_line_error(sft_tiny_run, tmp_path, capsys):
    import importlib.util

    missing = next((name for name in ("wandb", "mlflow", "tensorboard") if not importlib.util.find_spec(name)), None)
    if missing is None or (missing == "tensorboard" and importlib.util.find_spec("tensorboardX")):
        pytest.skip("every tracker package is installed here")
    code, _, err = heal(capsys, "ppo", "--model_name", sft_tiny_run["dir"], "--reward", "rule:pubmedqa",
                        "--dataset_path", sft_tiny_run["data"]["train"], "--output_dir", tmp_path / "out",
                        "--report_to", missing)
    assert_one_line_error(code, err, f"--report_to {missing}", f"pip install {missing}")


def test_report_to_tensorboard_writes_the_metrics(sft_tiny_run, no_prompts, tmp_path, capsys):
    """Item 4: --report_to tensorboard sends every update's metrics through accelerate's tracker (event files)."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "ppo_tb"
    code, _, err = heal(capsys, "ppo", "--model_name", sft_tiny_run["dir"], "--reward", "rule:pubmedqa",
                        "--dataset_path", no_prompts["train"], "--eval_split_size", "0", "--output_dir", out,
                        "--response_length", "4", "--max_steps", "2", "--per_device_train_batch_size", "8",
                        "--report_to", "tensorboard", *FAST)
    assert code == 0, err
    assert list((out / "runs" / "heal-ppo").glob("events.out.tfevents.*"))  # the run's name: heal-ppo
    board = EventAccumulator(str(out / "runs" / "heal-ppo"))
    board.Reload()
    logged = {r["step"]: r["objective/kl"] for r in _rows(out)}
    for key in ("objective/kl", "objective/scores", "loss/policy", "loss/value", "policy/clipfrac",
                "val/explained_var", "response/eos_rate"):
        assert [e.step for e in board.Scalars(key)] == [1, 2], key
    assert [e.value for e in board.Scalars("objective/kl")] == pytest.approx([logged[1], logged[2]], abs=1e-6)


def test_whitening_and_kl_math_in_a_real_rollout_batch(sft_tiny_run):
    """Steps 5–7 on a real rollout batch (responses of different lengths, padding after the stop token, a policy that
    has moved away from its reference): per-token rewards sum to score − β·ΣKL per row with the score at the last
    real token and nothing on padding; whitened rewards keep their mean and get unit variance over the real tokens;
    whitened advantages have mean 0 and variance 1 there."""
    import torch

    from heal.ppo import setup
    from heal.ppo.advantages import gae, masked_mean, masked_var, masked_whiten, token_rewards
    from heal.ppo.kl import kl_penalty
    from heal.ppo.rollout import make_rollout
    from heal.rl.prompts import load_prompts
    from heal.rl.rewards import parse_reward
    from heal.ppo.train import make_parser

    prompts = load_prompts(str(sft_tiny_run["data"]["train"]))[:12]
    script, training, model_args = make_parser().parse([
        "--model_name", str(sft_tiny_run["dir"]), "--reward", "rule:pubmedqa", "--output_dir", "unused",
        "--response_length", "12", "--per_device_train_batch_size", "12", "--temperature", "1.2"])
    run = setup.build_run(script, training, model_args, parse_reward(script.reward, None), prompts,
                          setup.batch_sizes(training, 1, len(prompts)), credentialed=False, trackers=[])
    torch.manual_seed(0)
    with torch.no_grad():  # move the reference off the policy (which samples as trained), so KL is not zero
        for p in run.reference.parameters():
            p.add_(0.02 * torch.randn_like(p))
    run.settings.policy_pass = True
    rollout = make_rollout(run.unwrapped, run.reference, run.reward, run.tokenizer, prompts, run.settings)
    mask = rollout.response_mask.float()  # (B, T)
    lengths = mask.sum(1)
    assert len(set(lengths.tolist())) > 1 and (mask == 0).any()  # ragged: real padding after stop tokens
    kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, "k1") * mask
    assert kl.abs().sum() > 0
    beta = 0.1
    rewards = token_rewards(rollout.scores, kl, mask, beta)
    assert rewards.sum(1).tolist() == pytest.approx((rollout.scores - beta * kl.sum(1)).tolist(), abs=1e-5)
    last = lengths.long() - 1
    rows = torch.arange(len(prompts))
    assert rewards[rows, last].tolist() == pytest.approx((rollout.scores - beta * kl[rows, last]).tolist(), abs=1e-5)
    assert float(rewards[mask == 0].abs().sum()) == 0.0
    scaled = masked_whiten(rewards, mask, shift_mean=False)
    assert float(masked_mean(scaled, mask)) == pytest.approx(float(masked_mean(rewards, mask)), abs=1e-5)
    assert float(masked_var(scaled, mask)) == pytest.approx(1.0, abs=1e-3)
    advantages, returns = gae(rewards, rollout.values, mask, 1.0, 0.95)
    whitened = masked_whiten(advantages, mask)
    assert float(masked_mean(whitened, mask)) == pytest.approx(0.0, abs=1e-5)
    assert float(masked_var(whitened, mask)) == pytest.approx(1.0, abs=1e-3)


def test_rollout_logprobs_are_those_of_the_sampling_distribution(sft_tiny_run):
    """Huang et al. details 1, 6, 7: left-padded prompts of different lengths, dropout off, and the temperature applied
    in scoring exactly as in sampling — log π_old from the rollout's forward pass equals the log-probability the
    sampler drew each token with, so the PPO ratio starts at exactly 1."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from heal.ppo.models import PolicyAndValue, disable_dropout, load_value_model
    from heal.ppo.rollout import encode_prompts, forward_pass, left_pad, truncate_after_stop

    folder, temperature = str(sft_tiny_run["dir"]), 0.7
    tokenizer = AutoTokenizer.from_pretrained(folder)
    policy = AutoModelForCausalLM.from_pretrained(folder)
    disable_dropout(policy)
    value = load_value_model(folder, tokenizer, SimpleModelArgs(), from_policy=True)
    model = PolicyAndValue(policy, value).eval()
    records = io.read_records(sft_tiny_run["data"]["dev"])[:6]
    ids = encode_prompts(tokenizer, records, None, max_prompt_length=60 + 7 * 4)
    ids = [row[-(40 + 9 * i):] for i, row in enumerate(ids)]  # prompts of 40…85 tokens: real left padding
    query, query_mask = left_pad(ids, tokenizer.pad_token_id)
    torch.manual_seed(0)
    out = policy.generate(input_ids=query, attention_mask=query_mask, max_new_tokens=8, do_sample=True,
                          temperature=temperature, top_k=0, top_p=1.0, eos_token_id=[tokenizer.eos_token_id],
                          pad_token_id=tokenizer.pad_token_id, output_scores=True, return_dict_in_generate=True)
    response = out.sequences[:, query.shape[1]:]
    sampled = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1)  # (B, T, V) as sampled
    sampled = sampled.gather(-1, response.unsqueeze(-1)).squeeze(-1)
    response, mask, _ = truncate_after_stop(response, [tokenizer.eos_token_id], tokenizer.pad_token_id)
    logprobs, ref_logprobs, values = forward_pass(model, policy, query, query_mask, response, mask, temperature)
    real = mask.bool()
    assert torch.allclose(logprobs[real], sampled[real], atol=1e-4)
    assert torch.equal(logprobs, ref_logprobs)  # the reference is the same network before training
    assert torch.all(values == 0) and torch.all(logprobs[~real] == 0)  # zero value head; padding masked


class SimpleModelArgs:
    use_peft = False
    dtype = None
    trust_remote_code = False


def test_length_groups_compute_what_one_padded_batch_computes(sft_tiny_run):
    """PolicyAndValue runs rows in groups of similar length without their shared left padding; logits and values
    must equal those of the whole left-padded batch, in the callers' row order."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from heal.ppo.models import PolicyAndValue, length_groups, load_value_model
    from heal.rl.rewards import sequence_inputs
    from heal.ppo.rollout import encode_prompts, left_pad

    folder = str(sft_tiny_run["dir"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    value = load_value_model(folder, tokenizer, SimpleModelArgs(), from_policy=True)
    torch.manual_seed(0)
    torch.nn.init.normal_(value.score.weight)  # non-zero values, so the check means something
    model = PolicyAndValue(AutoModelForCausalLM.from_pretrained(folder), value).eval()
    rows = encode_prompts(tokenizer, io.read_records(sft_tiny_run["data"]["dev"])[:10], None, 200)
    rows = [row[-(30 + 7 * (i * 3 % 10)):] for i, row in enumerate(rows)]  # 30…93 tokens, shuffled lengths
    query, query_mask = left_pad(rows, tokenizer.pad_token_id)
    response = torch.randint(5, 100, (10, 6))
    response_mask = torch.ones_like(response)
    response_mask[::3, 4:] = 0
    inputs = sequence_inputs(query, query_mask, response, response_mask)
    assert [len(g) for g in length_groups(inputs[1])] == [5, 5]  # 10 rows: two groups of ≥ 4
    with torch.no_grad():
        logits, values = model(*inputs, 6)
        whole_logits, whole_values = model._forward(*inputs, 6)  # one group: the padded batch as it is
    assert torch.allclose(logits, whole_logits, atol=1e-4) and torch.allclose(values, whole_values, atol=1e-4)
    assert values.abs().sum() > 0


def test_the_first_ppo_step_provides_the_rollouts_logprobs_and_values(sft_tiny_run):
    """With one optimizer step per epoch over the whole batch, the rollout skips its policy/value pass and the first
    PPO step's forward pass provides log π_old and V (step 5'): the update must be the one the separate pass gives."""
    import torch

    from heal.ppo import setup
    from heal.rl.prompts import load_prompts
    from heal.rl.rewards import parse_reward
    from heal.ppo.train import make_parser, ppo_update

    prompts = load_prompts(str(sft_tiny_run["data"]["train"]))[:32]
    metrics = {}
    for policy_pass in (True, False):
        script, training, model_args = make_parser().parse([
            "--model_name", str(sft_tiny_run["dir"]), "--reward", "rule:pubmedqa", "--output_dir", "unused",
            "--response_length", "6", "--per_device_train_batch_size", "8", "--max_steps", "2"])
        reward = parse_reward(script.reward, training.reward_model_path)
        run = setup.build_run(script, training, model_args, reward, prompts, setup.batch_sizes(training, 1, len(prompts)),
                              credentialed=False, trackers=[])
        assert run.settings.policy_pass is False  # one minibatch, no accumulation: the fused path by default
        run.settings.policy_pass = policy_pass
        torch.manual_seed(0)
        rows = []
        for _ in range(2):
            rows.append(ppo_update(run)[0])
            run.step += 1
        metrics[policy_pass] = rows
    for key in ("objective/scores", "objective/kl", "loss/policy", "loss/value", "val/ratio", "policy/clipfrac"):
        assert [r[key] for r in metrics[False]] == pytest.approx([r[key] for r in metrics[True]], abs=1e-4), key
    assert metrics[False][1]["objective/kl"] != 0.0  # the second update's rollout came from trained weights


def test_the_value_model_starts_on_the_normalised_reward_scale(sft_tiny_run, reward_tiny_run):
    """Huang et al. detail 3 with normalisation on (the default): PPO's score is (r − mean) / std, so the value model
    built from the reward model must start at that scale — V at a response's last real token equals the normalised
    score PPO gets for that response, not the raw score."""
    import torch
    from transformers import AutoTokenizer

    from heal.models.classifier import token_scores
    from heal.ppo.models import load_value_model
    from heal.reward.scoring import normalization
    from heal.rl.rewards import RewardModelSource, ScoringBatch
    from heal.rl.sampling import encode_prompts, left_pad

    tokenizer = AutoTokenizer.from_pretrained(str(sft_tiny_run["dir"]))
    reward = RewardModelSource(str(reward_tiny_run["dir"]), tokenizer)
    mean, std = normalization(reward.model.config)
    assert (mean, std) != (0.0, 1.0)  # the fixture's reward model is normalised
    value = load_value_model(str(reward_tiny_run["dir"]), tokenizer, SimpleModelArgs(), from_policy=False).eval()
    records = io.read_records(sft_tiny_run["data"]["dev"])[:6]
    query, query_mask = left_pad(encode_prompts(tokenizer, records, None, 128), tokenizer.pad_token_id)
    answers = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
               for t in ("No.", "Yes.", "Maybe. It depends.", "No.", "Yes, the results show it.", "Maybe.")]
    width = max(map(len, answers))
    response = torch.tensor([a + [tokenizer.pad_token_id] * (width - len(a)) for a in answers])
    response_mask = torch.tensor([[1] * len(a) + [0] * (width - len(a)) for a in answers])
    batch = ScoringBatch(query, query_mask, response, response_mask, [r["prompt"] for r in records], [], records)
    with torch.no_grad():
        normalised = reward.score(batch)  # what PPO is rewarded with
        values = token_scores(value, *sequence_inputs(query, query_mask, response, response_mask))
    last = query.shape[1] + response_mask.sum(1) - 1
    initial = values[torch.arange(6), last]
    assert torch.allclose(initial, normalised, atol=1e-4)
    raw = normalised * std + mean
    assert not torch.allclose(initial, raw, atol=1e-2)  # before the fix V started at the raw score


def _tiny_ppo_run(sft_tiny_run, tmp_path, *extra):
    from heal.ppo import setup
    from heal.ppo.train import make_parser
    from heal.rl.prompts import load_prompts
    from heal.rl.rewards import parse_reward

    prompts = load_prompts(str(sft_tiny_run["data"]["train"]))[:16]
    script, training, model_args = make_parser().parse([
        "--model_name", str(sft_tiny_run["dir"]), "--reward", "rule:pubmedqa", "--output_dir", str(tmp_path / "out"),
        "--response_length", "6", "--per_device_train_batch_size", "8", "--max_steps", "2", *extra])
    reward = parse_reward(script.reward, training.reward_model_path)
    sizes = setup.batch_sizes(training, 1, len(prompts))
    return setup.build_run(script, training, model_args, reward, prompts, sizes, credentialed=False, trackers=[])


def test_attn_implementation_reaches_the_policy_and_the_value_model(sft_tiny_run, tmp_path):
    run = _tiny_ppo_run(sft_tiny_run, tmp_path, "--attn_implementation", "eager")
    assert run.unwrapped.policy.config._attn_implementation == "eager"
    assert run.unwrapped.value_model.config._attn_implementation == "eager"


def test_torch_compile_runs_the_step_through_compiled_trunks_and_leaves_the_weights_alone(sft_tiny_run, tmp_path):
    """--torch_compile: the PPO step's forward goes through torch.compile'd policy and value trunks that compute what
    the eager modules compute; state_dict (what checkpoints and the final policy save) gains no keys; an update
    trains. The "eager" backend checks the wiring in seconds (inductor would take a minute to compile)."""
    import torch

    from heal.ppo.train import ppo_update
    from heal.rl.rewards import sequence_inputs
    from heal.rl.sampling import encode_prompts, left_pad

    run = _tiny_ppo_run(sft_tiny_run, tmp_path, "--torch_compile", "true", "--torch_compile_backend", "eager")
    model = run.unwrapped
    assert set(model.__dict__["_compiled"]) == {"policy", "value"}
    assert not any("_orig_mod" in key for key in model.state_dict())
    torch.manual_seed(0)
    torch.nn.init.normal_(model.value_model.score.weight)  # non-zero values, so the comparison means something
    rows = encode_prompts(run.tokenizer, run.prompts[:8], None, 200)
    query, query_mask = left_pad([row[-(30 + 5 * i):] for i, row in enumerate(rows)], run.tokenizer.pad_token_id)
    response = torch.randint(5, 100, (8, 6))
    inputs = sequence_inputs(query, query_mask, response, torch.ones_like(response))
    with torch.no_grad():
        compiled = model(*inputs, 6)
        eager_calls = model.__dict__.pop("_compiled")
        eager = model(*inputs, 6)
        model.__dict__["_compiled"] = eager_calls
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(compiled, eager))
    before = [p.detach().clone() for p in model.policy.parameters()]
    ppo_update(run)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.policy.parameters()))
