import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so tests can `from helpers import ...`


# --- shared fixtures for the training stages (sft, reward, ppo, eval): built-in data and a tiny model -------------

import pytest  # noqa: E402

# heal-tiny at test size: seconds per run on a 2-core CPU. Stages pass these flags through to `heal <verb>`.
TINY_FLAGS = ("--tiny_hidden_size", "64", "--tiny_layers", "2", "--tiny_heads", "2")
# Quiet, quick training logs for any TrainingArguments-based verb.
QUICK_FLAGS = ("--disable_tqdm", "true", "--logging_steps", "5", "--report_to", "none")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test (modules opt in with `pytestmark = pytest.mark.usefixtures(...)`): on a shared
    2-core machine a second thread mostly waits (measured 3-10x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def pubmedqa_sft_data(tmp_path_factory):
    """Synthetic PubMedQA records written by `heal prep` (.csv, as the seed's pipeline writes them).

    {"train": 270 items (fold 0's train part), "dev": 30 (fold 0's dev part), "test": 60 items from another seed,
    sharing nothing with train/dev}, plus the raw files.
    """
    from heal.cli import run

    folder = tmp_path_factory.mktemp("pubmedqa_sft_data")
    paths = {"raw": folder / "pqal.json", "folds": folder / "folds.json", "raw_test": folder / "pqal_test.json",
             "train": folder / "pubmedqa_train.csv", "dev": folder / "pubmedqa_dev.csv",
             "test": folder / "pubmedqa_test.csv"}
    steps = [
        ["--dataset", "synthetic_pubmedqa", "--n", "300", "--seed", "0", "--output_path", paths["raw"],
         "--folds_path", paths["folds"]],
        ["--dataset", "synthetic_pubmedqa", "--n", "60", "--seed", "1", "--output_path", paths["raw_test"]],
        ["--dataset", "pubmedqa", "--input_path", paths["raw"], "--folds_path", paths["folds"], "--fold", "0",
         "--part", "train", "--output_path", paths["train"]],
        ["--dataset", "pubmedqa", "--input_path", paths["raw"], "--folds_path", paths["folds"], "--fold", "0",
         "--part", "dev", "--output_path", paths["dev"]],
        ["--dataset", "pubmedqa", "--input_path", paths["raw_test"], "--output_path", paths["test"]],
    ]
    for argv in steps:
        assert run(["prep", *map(str, argv)]) == 0
    return paths


@pytest.fixture(scope="session")
def sft_tiny_run(tmp_path_factory, pubmedqa_sft_data):
    """A finished `heal sft` run of heal-tiny on the synthetic PubMedQA train part (a policy later stages can use).

    {"dir": the output folder (a normal HF model folder), "data": the data paths, "argv": the flags it ran with}
    """
    from heal.cli import run

    out = tmp_path_factory.mktemp("sft_tiny") / "policy"
    argv = ["sft", "--dataset", "pubmedqa", "--dataset_path", str(pubmedqa_sft_data["train"]),
            "--eval_dataset_path", str(pubmedqa_sft_data["dev"]), "--model_name", "heal-tiny",
            "--output_dir", str(out), *TINY_FLAGS, *QUICK_FLAGS, "--max_steps", "40",
            "--per_device_train_batch_size", "8", "--learning_rate", "3e-3", "--eval_strategy", "steps",
            "--eval_steps", "20", "--save_steps", "20"]
    assert run(argv) == 0
    return {"dir": out, "data": pubmedqa_sft_data, "argv": argv}


# --- eval / redteam / serve: an untrained heal-tiny saved as a normal model folder (seconds to build) --------------

@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A small random heal-tiny saved with save_pretrained: a model folder any `--model_path` accepts."""
    from heal.data.pubmedqa import to_record
    from heal.data.synthetic import make_pubmedqa
    from heal.models.tiny import TinyConfig, build_heal_tiny

    records = [to_record(k, v) for k, v in make_pubmedqa(40, seed=11).items()]
    corpus = [t for r in records for t in (r["prompt"], r["completion"])] + ["I'm sorry, but I cannot help."] * 5
    model, tokenizer = build_heal_tiny(corpus, TinyConfig(tiny_vocab_size=800, tiny_hidden_size=32, tiny_layers=2,
                                                          tiny_heads=2), seed=0)
    folder = tmp_path_factory.mktemp("tiny_model") / "heal-tiny-random"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# --- ppo / grpo: a reward model to optimise against ---------------------------------------------------------------

@pytest.fixture(scope="session")
def reward_tiny_run(tmp_path_factory, sft_tiny_run):
    """A finished `heal reward` run on `sft_tiny_run` that prefers an answer starting "No." to the same answer starting
    "Yes.", "Maybe." or with no decision — a reward a PPO test can move the policy towards within a few updates (the
    SFT policy answers "Yes.").

    Trained on 40 synthetic PubMedQA prompts (a preference file, recorded as its dataset_path), so the seed's PPO
    command, whose prompts default to the reward model's, has few of them. Normalised as `heal reward` does by default
    (the std is floored by the spread of chosen and rejected answers together), so PPO sees (r − mean) / std and its
    value model starts on that scale.
    {"dir": the output folder, "pairs": the preference file}
    """
    from heal.cli import run
    from heal.data import io

    folder = tmp_path_factory.mktemp("reward_tiny")
    records = io.read_records(sft_tiny_run["data"]["train"])[:40]
    pairs = folder / "prefers_no.jsonl"
    io.write_records(pairs, [{"prompt": r["prompt"], "chosen": "No. " + r["long_answer"], "rejected": rejected}
                             for r in records
                             for rejected in ("Yes. " + r["long_answer"], "Maybe. " + r["long_answer"], r["long_answer"])])
    out = folder / "rm"
    argv = ["reward", "--dataset_path", str(pairs), "--model_name", str(sft_tiny_run["dir"]), "--output_dir",
            str(out), "--max_steps", "40", "--learning_rate", "1e-3", "--per_device_train_batch_size", "8",
            "--eval_split_size", "0", "--save_steps", "1000", *QUICK_FLAGS]
    assert run(argv) == 0
    return {"dir": out, "pairs": pairs}
