"""The over-optimisation monitor of `heal ppo` and `heal grpo` (heal.rl.monitor): points at the expected updates with
both scores and the KL, --keep_best keeping the best update by the gold measure (the final weights are that update's),
the figure, the report's table, resume, and one-line errors for bad flags.

The SFT policy of `sft_tiny_run` answers "Yes." to every question; the reward model of `reward_tiny_run` prefers
"No.". PPO against that reward model on questions whose gold answer is "yes" is a textbook over-optimisation: the
proxy rises while the gold (rule:pubmedqa) falls, so the best model by the gold is the starting one.
"""

import hashlib

import pytest
from conftest import QUICK_FLAGS
from helpers import assert_one_line_error, heal

from heal.data import io
from heal.models import run_folder

FAST = ("--disable_tqdm", "true", "--max_prompt_length", "128", "--max_eval_samples", "12")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def by_label(tmp_path_factory, pubmedqa_sft_data):
    """Held-out synthetic PubMedQA records whose gold decision is "yes", and those whose decision is "no"."""
    folder = tmp_path_factory.mktemp("by_label")
    held = [r for part in ("dev", "test") for r in io.read_records(pubmedqa_sft_data[part])]
    paths = {"no_train": folder / "no_train.csv"}
    io.write_records(paths["no_train"], [r for r in io.read_records(pubmedqa_sft_data["train"]) if r["label"] == "no"])
    for label in ("yes", "no"):
        paths[label] = folder / f"{label}.csv"
        io.write_records(paths[label], [r for r in held if r["label"] == label])
    return paths


def _weights_digest(folder) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(folder / "model.safetensors"))
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + tensors[name].float().numpy().tobytes())
    return digest.hexdigest()


def _points(out) -> list[dict]:
    return [r for r in run_folder.read_metrics(out) if "monitor/gold" in r]


def _ppo(capsys, sft_tiny_run, reward_tiny_run, out, eval_path, *extra):
    return heal(capsys, "ppo", "--model_name", sft_tiny_run["dir"], "--reward_model_path", reward_tiny_run["dir"],
                "--dataset_path", sft_tiny_run["data"]["train"], "--eval_dataset_path", eval_path,
                "--gold_reward", "rule:pubmedqa", "--output_dir", out, "--response_length", "6",
                "--per_device_train_batch_size", "16", "--learning_rate", "3e-3", "--use_peft", "--lora_r", "16",
                "--lora_alpha", "32", *FAST, *extra)


class SaysYes:
    """A gold measure that prefers the starting policy: 1 for an answer that begins with "Yes" (what the SFT policy
    says to every question), else 0. Stands in for --gold_reward rule:refusal in the test below."""

    def to(self, device):
        return self

    def score(self, batch):
        import torch

        return torch.tensor([float(t.strip().lower().startswith("yes")) for t in batch.texts])


def test_ppo_keeps_the_best_update_by_the_gold_measure(sft_tiny_run, by_label, tmp_path, capsys, monkeypatch):
    import heal.rl.rewards as rewards

    real = rewards.make_reward_source
    monkeypatch.setattr(rewards, "make_reward_source", lambda spec, *a, **k: SaysYes() if spec.target ==
                        "rule:refusal" else real(spec, *a, **k))
    out = tmp_path / "ppo_best"
    # rule:pubmedqa on questions whose answer is "no" moves the policy from "Yes." to "No." within a few updates
    # (tests/test_ppo.py); the gold prefers "Yes.", so the best update by the gold is the first
    code, _, err = heal(capsys, "ppo", "--model_name", sft_tiny_run["dir"], "--reward", "rule:pubmedqa",
                        "--dataset_path", by_label["no_train"], "--eval_dataset_path", by_label["no"],
                        "--gold_reward", "rule:refusal", "--output_dir", out, "--response_length", "8",
                        "--max_steps", "10", "--eval_steps", "5", "--keep_best", "true",
                        "--per_device_train_batch_size", "16", *FAST)
    assert code == 0, err
    points = _points(out)
    assert [p["step"] for p in points] == [p["monitor/step"] for p in points] == [0, 5, 10]
    assert points[0]["monitor/kl"] == 0.0 and all(p["monitor/kl"] > 0 for p in points[1:])
    # the proxy (the rule's accuracy on "no" questions) rises while the gold (share of "Yes.") falls
    assert points[0]["monitor/gold"] >= 0.9 and points[-1]["monitor/gold"] < points[0]["monitor/gold"]
    assert points[-1]["monitor/proxy"] > points[0]["monitor/proxy"]
    assert points[-1]["monitor/proxy"] == points[-1]["monitor/accuracy"]
    run = run_folder.read_run(out)
    assert run["monitor"]["best_step"] == 0 and run["monitor"]["best_gold"] == points[0]["monitor/gold"]
    assert run["monitor"]["last_step"] == 10 and run["monitor"]["last_gold"] == points[-1]["monitor/gold"]
    assert run["metrics"]["monitor/best_step"] == 0
    # the published weights are the starting policy's, bit for bit; the best copy's folder is gone
    assert _weights_digest(out) == _weights_digest(sft_tiny_run["dir"])
    assert not (out / "best-gold").exists()
    card = (out / "README.md").read_text()
    assert "update 0, the best gold score" in card and "the last update (10)" in card
    png = (out / "overoptimisation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_ppo_with_lora_measures_kl_against_the_adapters_off(sft_tiny_run, reward_tiny_run, by_label, tmp_path,
                                                            capsys):
    out = tmp_path / "ppo_lora"
    code, _, err = _ppo(capsys, sft_tiny_run, reward_tiny_run, out, by_label["yes"], "--max_steps", "4",
                        "--eval_steps", "2", "--keep_best", "true")
    assert code == 0, err
    points = _points(out)
    assert [p["step"] for p in points] == [0, 2, 4] and all(p["monitor/kl"] != 0 for p in points[1:])
    best = max(points, key=lambda p: (p["monitor/gold"], -p["monitor/step"]))
    assert run_folder.read_run(out)["monitor"]["best_step"] == best["monitor/step"]


def test_ppo_with_lora_and_a_shared_backbone_keeps_a_loadable_best_update(sft_tiny_run, reward_tiny_run, by_label,
                                                                         tmp_path, capsys):
    """The alignment preset's PPO: LoRA, the value head on the policy's trunk, the monitor and --keep_best together.
    The published model is a plain causal LM: the policy's weights only, no value head and no adapters."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "ppo_lora_shared"
    code, _, err = _ppo(capsys, sft_tiny_run, reward_tiny_run, out, by_label["yes"], "--max_steps", "4",
                        "--eval_steps", "2", "--keep_best", "true", "--share_backbone", "true")
    assert code == 0, err
    points = _points(out)
    assert [p["step"] for p in points] == [0, 2, 4] and all(p["monitor/kl"] != 0 for p in points[1:])
    best = max(points, key=lambda p: (p["monitor/gold"], -p["monitor/step"]))
    run = run_folder.read_run(out)
    assert run["monitor"]["best_step"] == best["monitor/step"] and "--share_backbone" in run["value_init"]
    names = set(load_file(str(out / "model.safetensors")))
    assert not any("value" in n or "score" in n or "lora" in n for n in names)
    assert names == set(load_file(str(sft_tiny_run["dir"] / "model.safetensors")))
    AutoModelForCausalLM.from_pretrained(out)  # loads as the policy it is
    if best["monitor/step"] == 0:
        assert _weights_digest(out) == _weights_digest(sft_tiny_run["dir"])


def test_ppo_without_keep_best_publishes_the_last_update(sft_tiny_run, reward_tiny_run, by_label, tmp_path, capsys):
    out = tmp_path / "ppo_last"
    code, _, err = _ppo(capsys, sft_tiny_run, reward_tiny_run, out, by_label["no"], "--max_steps", "6",
                        "--eval_steps", "4")
    assert code == 0, err
    points = _points(out)
    assert [p["step"] for p in points] == [0, 4, 6]  # every 4 updates, and the last
    m = run_folder.read_run(out)["metrics"]
    # the last point is the after-training evaluation itself (greedy answers scored once)
    assert points[-1]["monitor/proxy"] == m["eval/score"] and points[-1]["monitor/gold"] == m["eval/accuracy"]
    assert "monitor/best_step" not in m and not (out / "best-gold").exists()
    assert _weights_digest(out) != _weights_digest(sft_tiny_run["dir"])

    from heal.contracts import contract_of

    summary = contract_of("ppo").summarize(out)
    assert [c for c, _ in summary.figures] and summary.figures[0][1].name == "overoptimisation.png"
    caption, table = summary.examples[0]
    assert "over-optimisation" in caption and [row["update"] for row in table] == [0, 4, 6]


def test_ppo_resumed_logs_every_monitor_point_once(sft_tiny_run, reward_tiny_run, by_label, tmp_path, capsys):
    out = tmp_path / "ppo_resume"
    save = ("--save_steps", "1", "--eval_steps", "1", "--keep_best", "true")
    code, _, err = _ppo(capsys, sft_tiny_run, reward_tiny_run, out, by_label["yes"], "--max_steps", "2", *save)
    assert code == 0, err
    code, _, err = _ppo(capsys, sft_tiny_run, reward_tiny_run, out, by_label["yes"], "--max_steps", "3", *save,
                        "--resume_from_checkpoint", out / "checkpoint-1")
    assert code == 0, err
    points = _points(out)
    assert [p["step"] for p in points] == [0, 1, 2, 3]
    # the first attempt completed, so its best copy was published and removed: the resumed attempt chooses among
    # the points it measured itself (updates 2 and 3)
    best = max(points[2:], key=lambda p: (p["monitor/gold"], -p["monitor/step"]))
    assert run_folder.read_run(out)["monitor"]["best_step"] == best["monitor/step"]


def test_grpo_monitor_points_come_from_a_trainer_callback(sft_tiny_run, reward_tiny_run, by_label, tmp_path, capsys):
    out = tmp_path / "grpo"
    code, _, err = heal(capsys, "grpo", "--model_name", sft_tiny_run["dir"], "--reward_model_path",
                        reward_tiny_run["dir"], "--dataset_path", sft_tiny_run["data"]["train"],
                        "--eval_dataset_path", by_label["yes"], "--gold_reward", "rule:pubmedqa", "--keep_best", "true",
                        "--output_dir", out, "--max_completion_length", "6", "--num_generations", "4",
                        "--per_device_train_batch_size", "8", "--max_steps", "5", "--eval_steps", "2",
                        "--learning_rate", "3e-3", "--max_prompt_length", "128", "--max_eval_samples", "12",
                        *QUICK_FLAGS)
    assert code == 0, err
    points = _points(out)
    assert [p["step"] for p in points] == [0, 2, 4, 5]
    assert points[0]["monitor/kl"] == 0.0 and points[-1]["monitor/kl"] != 0.0
    assert all({"monitor/proxy", "monitor/gold", "monitor/accuracy"} <= set(p) for p in points)
    run = run_folder.read_run(out)
    best = max(points, key=lambda p: (p["monitor/gold"], -p["monitor/step"]))
    assert run["monitor"]["best_step"] == best["monitor/step"]
    if best["monitor/step"] == 0:
        assert _weights_digest(out) == _weights_digest(sft_tiny_run["dir"])
    assert (out / "overoptimisation.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("verb", ["ppo", "grpo"])
@pytest.mark.parametrize("flags,needles", [
    (("--reward", "rule:pubmedqa", "--keep_best", "true"), ("--keep_best", "--gold_reward")),
    (("--reward", "rule:pubmedqa", "--gold_reward", "rule:pubmedqa"), ("--gold_reward", "training reward")),
    (("--reward", "rule:pubmedqa", "--gold_reward", "rule:nonsense"), ("--gold_reward rule:nonsense",)),
    (("--reward", "rule:pubmedqa", "--gold_reward", "missing/rm"), ("--gold_reward missing/rm",)),
    (("--reward", "rule:pubmedqa", "--gold_reward", "rule:refusal", "--eval_split_size", "0"),
     ("--gold_reward", "held-out")),
])
def test_bad_monitor_flags_are_one_line_and_exit_2(verb, flags, needles, sft_tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = heal(capsys, verb, "--model_name", sft_tiny_run["dir"], "--dataset_path",
                        sft_tiny_run["data"]["train"], "--output_dir", out, *flags)
    assert_one_line_error(code, err, *needles)
    assert not out.exists()


def test_every_point_spacing():
    from heal.rl.monitor import every

    assert every(None, 40) == 4 and every(None, 5) == 1  # about ten points
    assert every(5, 40) == 5 and every(0.25, 40) == 10
