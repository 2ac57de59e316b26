"""`heal reward`: reference-derived, preference-file and AI-labelled pairs; decoder and encoder backbones; LoRA;
normalisation; the seed command; bad input."""

import json
import subprocess
import sys

import pytest
from conftest import QUICK_FLAGS, TINY_FLAGS
from helpers import REPO, SHARED, assert_one_line_error, heal

from heal.data import io

QUICK_RM = (*QUICK_FLAGS, "--per_device_train_batch_size", "8", "--save_steps", "1000")


def test_seed_command_verbatim_trains_a_loadable_normalised_reward_model(sft_tiny_run, tmp_path):
    """`python src/training/reward_model.py --dataset pubmedqa --dataset_path … --model_name <sft> --output_dir …`"""
    (tmp_path / "data" / "processed").mkdir(parents=True)
    (tmp_path / "data/processed/pubmedqa.csv").write_bytes(sft_tiny_run["data"]["train"].read_bytes())
    proc = subprocess.run([sys.executable, str(REPO / "src/training/reward_model.py"), "--dataset", "pubmedqa",
                           "--dataset_path", "data/processed/pubmedqa.csv", "--model_name", str(sft_tiny_run["dir"]),
                           "--output_dir", "models/reward_model/pubmedqa"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = tmp_path / "models/reward_model/pubmedqa"
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    assert model.config.num_labels == 1 and "heal_reward_normalization" in model.config.to_dict()
    card = (folder / "README.md").read_text()
    assert "stage | `reward`" in card and "pipeline_tag: text-classification" in card
    assert "reference-derived" in card
    run = json.loads((folder / "heal_run.json").read_text())
    assert run["status"] == "complete" and "eval/accuracy" in run["metrics"]

    from heal.reward.scoring import RewardScorer

    records = io.read_records(tmp_path / "data/processed/pubmedqa.csv")[:64]
    scores = RewardScorer(str(folder)).score([r["prompt"] for r in records], [r["reference"] for r in records])
    assert abs(sum(scores) / len(scores)) < 0.5  # references score about 0 after normalisation


def test_reward_learns_on_synthetic_pairs_from_the_sft_model(sft_tiny_run, tmp_path, capsys):
    out = tmp_path / "rm"
    code, _, err = heal(capsys, "reward", "--dataset", "pubmedqa", "--dataset_path", sft_tiny_run["data"]["train"],
                        "--eval_dataset_path", sft_tiny_run["data"]["dev"], "--model_name", sft_tiny_run["dir"],
                        "--output_dir", out, "--num_train_epochs", "3", "--learning_rate", "1e-3", *QUICK_RM)
    assert code == 0, err
    metrics = json.loads((out / "heal_run.json").read_text())["metrics"]
    assert metrics["eval/accuracy"] > 0.7 and metrics["eval/accuracy"] > metrics["eval_before/accuracy"] + 0.15


def test_preference_file_with_lora(sft_tiny_run, tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    from heal.feedback.preferences import pubmedqa_pairs

    io.write_records(pairs, [{k: p[k] for k in ("prompt", "chosen", "rejected")}
                             for p in pubmedqa_pairs(io.read_records(sft_tiny_run["data"]["train"]))])
    out = tmp_path / "rm_lora"
    code, _, err = heal(capsys, "reward", "--dataset_path", pairs, "--model_name", sft_tiny_run["dir"], "--output_dir",
                        out, "--use_peft", "--lora_r", "4", "--lora_alpha", "8", "--max_steps", "6", *QUICK_RM)
    assert code == 0, err
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out)  # merged: loads without PEFT
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert "LoRA" in (out / "README.md").read_text()


def test_ai_labelled_pairs_with_a_judge(sft_tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HEAL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "rm_rlaif"
    prompts = tmp_path / "prompts.csv"
    io.write_records(prompts, io.read_records(sft_tiny_run["data"]["train"])[:24])
    code, _, err = heal(capsys, "reward", "--dataset", "pubmedqa", "--dataset_path", prompts, "--judge",
                        f"hf:{sft_tiny_run['dir']}", "--model_name", sft_tiny_run["dir"], "--output_dir", out,
                        "--max_steps", "3", "--eval_split_size", "0", *QUICK_RM)
    assert code == 0, err
    labelled = io.read_records(out / "rlaif_pairs.jsonl")
    assert labelled and all(p["judge"].startswith("hf:") for p in labelled)
    assert "AI-labelled" in (out / "README.md").read_text()


def _encoder(folder, with_head: bool = True):
    """A BERT-style encoder saved to `folder` (WordPiece tokenizer + tiny BertConfig): with a scalar head, or bare, so
    that `heal reward` draws a new one."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertConfig, BertForSequenceClassification, BertModel, PreTrainedTokenizerFast

    from heal.feedback.preferences import load_preferences

    texts = [t for p in load_preferences(HH_MEDICAL) for t in (p["prompt"], p["chosen"], p["rejected"])]
    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer()
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=800, special_tokens=[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", eos_token="[SEP]")
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=1, pad_token_id=0, max_position_embeddings=512)
    (BertForSequenceClassification if with_head else BertModel)(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


HH_MEDICAL = SHARED / "preferences" / "hh_rlhf_harmless_base_test_medical_subset.jsonl"


def test_encoder_backbone(tmp_path, capsys):
    backbone = _encoder(tmp_path / "encoder")
    out = tmp_path / "rm_encoder"
    code, _, err = heal(capsys, "reward", "--dataset", "other", "--dataset_path", HH_MEDICAL, "--model_name", backbone,
                        "--output_dir", out, "--max_steps", "4", "--max_length", "512", *QUICK_RM)
    assert code == 0, err
    from transformers import AutoModelForSequenceClassification

    assert type(AutoModelForSequenceClassification.from_pretrained(out)).__name__ == "BertForSequenceClassification"


def test_group_by_length_batches_pairs_of_similar_length(tmp_path, capsys, monkeypatch):
    """--train_sampling_strategy group_by_length (transformers' LengthGroupedSampler) needs a length per pair, which
    TRL's reward datasets lack: HEAL adds the longer answer's. Within a megabatch the batches then come longest first;
    held-out pairs are grouped the same way."""
    from trl.trainer import reward_trainer

    widths = []
    collate = reward_trainer.DataCollatorForPreference.torch_call

    def recording(self, examples):
        batch = collate(self, examples)
        widths.append(batch["input_ids"].shape[1])
        return batch

    monkeypatch.setattr(reward_trainer.DataCollatorForPreference, "torch_call", recording)
    backbone = _encoder(tmp_path / "encoder")
    for held_out in ("0.2", "0"):
        widths.clear()
        code, _, err = heal(capsys, "reward", "--dataset", "other", "--dataset_path", HH_MEDICAL, "--model_name",
                            backbone, "--output_dir", tmp_path / f"rm{held_out}", "--max_steps", "6", "--max_length",
                            "512", "--per_device_train_batch_size", "4", "--eval_split_size", held_out,
                            "--train_sampling_strategy", "group_by_length", *QUICK_FLAGS, "--save_steps", "1000")
        assert code == 0, err
    # 102 pairs in batches of 4: megabatches of 6 batches, each sorted longest first; the very first batch also
    # takes the longest pair of all (transformers' get_length_grouped_indices)
    assert len(widths) >= 6 and widths[0] == max(widths)
    assert widths[1:5] == sorted(widths[1:5], reverse=True) and len(set(widths[1:5])) > 1


def test_long_pairs_are_cut_from_the_left_to_fit_or_left_out_and_counted(tmp_path, capsys, monkeypatch):
    """Pairs longer than --max_length are kept, cut from the left as scoring reads text (the run record says how
    many); with --keep_long_pairs false TRL's RewardTrainer drops them, and the record and summary say how many it
    kept."""
    from datasets import Dataset

    from heal.reward import train

    backbone = _encoder(tmp_path / "encoder")
    datasets = []
    build_trainer = train._build_trainer

    def build(*args, **kwargs):
        trainer = build_trainer(*args, **kwargs)
        datasets.append(trainer.train_dataset)
        return trainer

    monkeypatch.setattr(train, "_build_trainer", build)
    runs = {}
    for keep in ("true", "false"):
        out = tmp_path / f"rm_{keep}"
        code, stdout, err = heal(capsys, "reward", "--dataset", "other", "--dataset_path", HH_MEDICAL, "--model_name",
                                 backbone, "--output_dir", out, "--max_steps", "2", "--max_length", "160",
                                 "--eval_split_size", "0.2", "--keep_long_pairs", keep, *QUICK_RM)
        assert code == 0, err
        runs[keep] = json.loads((out / "heal_run.json").read_text())["data"], stdout
    kept, stdout = runs["true"]
    assert kept["trained_pairs"] == kept["train_pairs"] and kept["evaluated_pairs"] == kept["eval_pairs"]
    assert 0 < kept["trained_truncated"] < kept["train_pairs"] and 0 < kept["evaluated_truncated"]
    assert f"{kept['trained_truncated']} training and {kept['evaluated_truncated']} held-out pairs were" in stdout
    ids = datasets[0]
    assert max(max(len(c), len(r)) for c, r in zip(ids["chosen_ids"], ids["rejected_ids"])) == 160
    dropped, stdout = runs["false"]
    assert 0 < dropped["trained_pairs"] < dropped["train_pairs"] and 0 < dropped["evaluated_pairs"] < dropped["eval_pairs"]
    assert dropped["trained_pairs"] == kept["train_pairs"] - kept["trained_truncated"]
    assert (f"trained on {dropped['trained_pairs']}, accuracy on {dropped['evaluated_pairs']} of "
            f"{dropped['eval_pairs']} held-out") in stdout
    assert isinstance(datasets[1], Dataset) and "truncated" not in datasets[1].column_names


def test_a_cut_pair_keeps_both_answers_and_a_pair_that_fits_is_tokenized_as_trl_does(tmp_path):
    from transformers import AutoTokenizer
    from trl.data_utils import _tokenize

    from heal.reward.train import _pair_ids

    tokenizer = AutoTokenizer.from_pretrained(_encoder(tmp_path / "encoder"))
    texts = {"prompt": "Human: " + "tell me about the weather again " * 30 + "\n\nAssistant:",
             "chosen": " It rains in Bergen.", "rejected": " I will not say."}
    cut = _pair_ids(tokenizer, texts, 40)
    assert cut["truncated"] and len(cut["chosen_ids"]) == len(cut["rejected_ids"]) == 40
    for key in ("chosen", "rejected"):  # the last tokens of the text, with the tokenizer's special tokens around them
        text = texts["prompt"] + texts[key] + (tokenizer.eos_token or "")
        content = tokenizer(text=text, add_special_tokens=False)["input_ids"]
        special = tokenizer(text="")["input_ids"]
        kept = content[-(40 - len(special)):]
        assert [i for i in cut[f"{key}_ids"] if i not in special] == kept
        assert tokenizer.decode(tokenizer(texts[key], add_special_tokens=False)["input_ids"]) in tokenizer.decode(kept)
    short = {"prompt": "Human: hi\n\nAssistant:", "chosen": " Hello.", "rejected": " Go away."}
    fits = _pair_ids(tokenizer, short, 40)
    assert not fits["truncated"]
    assert fits["chosen_ids"] == _tokenize(tokenizer, short["prompt"] + short["chosen"] + (tokenizer.eos_token or ""))[
        "input_ids"]
    assert tokenizer.truncation_side == "right"  # restored


def test_scoring_reads_the_end_of_a_long_text_and_leaves_the_tokenizer_as_it_was(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from heal.reward.scoring import raw_scores

    folder = _encoder(tmp_path / "encoder")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer.padding_side, tokenizer.truncation_side = "left", "right"
    start = "Human: " + "tell me about the weather again " * 30 + "\n\nAssistant:"
    # cut from the left to 40 tokens, texts that differ only at their start score alike; at their end, not
    scores = raw_scores(model, tokenizer, ["Hi. " + start + " It rains.", start + " It rains.",
                                           start + " I will not say that."], max_length=40)
    assert abs(scores[0] - scores[1]) < 1e-5 and abs(scores[1] - scores[2]) > 1e-5
    assert (tokenizer.padding_side, tokenizer.truncation_side) == ("left", "right")


def test_same_seed_same_reward_model_whatever_ran_before(tmp_path, capsys):
    """A bare encoder gets a new scalar head: drawn under --seed, not from whatever torch's generator holds (in a
    pipeline, what the stages before it consumed)."""
    import torch
    from safetensors.torch import load_file

    backbone = _encoder(tmp_path / "bare", with_head=False)
    weights = []
    for run, draws in enumerate((0, 1000)):
        torch.rand(draws)  # a different generator state before each run
        out = tmp_path / f"rm{run}"
        code, _, err = heal(capsys, "reward", "--dataset", "other", "--dataset_path", HH_MEDICAL, "--model_name",
                            backbone, "--output_dir", out, "--max_steps", "2", "--max_length", "512", *QUICK_RM)
        assert code == 0, err
        weights.append(load_file(out / "model.safetensors"))
    head = [k for k in weights[0] if "classifier" in k or "score" in k]
    assert head and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _pairs_file(tmp_path, rows):
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("case,needle", [
    ("identical", "chosen and rejected are identical"), ("empty", "empty 'rejected'"),
    ("columns", "no chosen/rejected columns"), ("missing_file", "not found"), ("api_model", "API models"),
    ("missing_model", "does not exist"),
])
def test_bad_input_exit_2_and_no_output(tmp_path, capsys, case, needle):
    good = {"prompt": "Is X safe?", "chosen": "Ask a clinician.", "rejected": "Sure."}
    data = {"identical": lambda: _pairs_file(tmp_path, [good, {**good, "rejected": good["chosen"]}]),
            "empty": lambda: _pairs_file(tmp_path, [{**good, "rejected": "  "}]),
            "columns": lambda: _pairs_file(tmp_path, [{"prompt": "q", "answer": "a"}]),
            "missing_file": lambda: tmp_path / "nope.jsonl"}.get(case, lambda: _pairs_file(tmp_path, [good]))()
    model = {"api_model": "gpt-4", "missing_model": str(tmp_path / "no_model")}.get(case, "heal-tiny")
    out = tmp_path / "rm"
    code, _, err = heal(capsys, "reward", "--dataset", "other", "--dataset_path", data, "--model_name", model,
                        "--output_dir", out, *TINY_FLAGS, *QUICK_RM)
    assert_one_line_error(code, err, needle)
    assert not out.exists()


def test_normalisation_std_is_floored_by_the_spread_of_all_answers():
    """References that all score alike (σ ≈ 0.02) must not turn into rewards of ±70 in PPO: the std is at least the
    spread of references and rejected answers together, so a rejected answer lands near −2."""
    import statistics

    from heal.reward.train import normalization_stats

    reference, rejected = [1.0, 1.02, 0.98, 1.0], [-1.0, -1.02, -0.98, -1.0]
    stats = normalization_stats(reference, rejected)
    assert stats["mean"] == pytest.approx(1.0)
    assert stats["std_reference"] == pytest.approx(statistics.pstdev(reference))  # ≈ 0.014: the old divisor
    assert stats["std"] == pytest.approx(statistics.pstdev(reference + rejected)) == pytest.approx(1.0, abs=0.01)
    assert (-1.0 - stats["mean"]) / stats["std"] == pytest.approx(-2.0, abs=0.02)
    # spread-out references keep their own std (the rejected answers sit among them here)
    wide = normalization_stats([-2.0, 0.0, 2.0], [0.0, 0.1])
    assert wide["std"] == pytest.approx(statistics.pstdev([-2.0, 0.0, 2.0]))
    # a reward model that scores everything alike is not rescaled at all
    assert normalization_stats([0.5, 0.5], [0.5, 0.5000001])["std"] == 1.0
