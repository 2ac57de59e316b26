"""Where `heal reward`'s preference pairs come from.

1. A preference file (any layout heal.feedback.preferences reads): used as is.
2. A processed file from `heal prep` with `--judge`: the policy samples candidates and the judge labels them (RLAIF,
   the same code as `heal label`); the labelled pairs are kept in the run folder (`rlaif_pairs.jsonl`).
3. A processed file without a judge: reference-derived pairs —
   - pubmedqa: gold answer (correct decision + conclusion) vs the same conclusion under a wrong decision;
   - safety: the reference safe response vs a policy sample that complied (sampled from --policy_name).
"""

from __future__ import annotations

from pathlib import Path

from heal.data import io
from heal.errors import HealError

PAIR_KEYS = ({"prompt", "chosen", "rejected"}, {"chosen", "rejected"},
             {"question", "response_chosen", "response_rejected"})


def is_preference_file(records: list[dict]) -> bool:
    columns = set(records[0]) if records else set()
    return any(keys <= columns for keys in PAIR_KEYS)


def policy_samples(policy: str, records: list[dict], n: int = 2, seed: int = 0, max_new_tokens: int = 96,
                   progress: bool = False) -> dict[str, list[str]]:
    """{record id: n sampled answers} from the policy (temperature 1)."""
    import torch

    from heal.models.generate import load_backend

    torch.manual_seed(seed)
    backend = load_backend(policy, batch_size=16, backend="hf", progress=progress)
    texts = [backend.render(str(r["prompt"])) for r in records for _ in range(n)]
    generations = backend.generate(texts, max_new_tokens=max_new_tokens, temperature=1.0, desc="sampling")
    return {str(r.get("id", i)): [g.text for g in generations[i * n:(i + 1) * n]] for i, r in enumerate(records)}


def derive_pairs(path: str, task: str, script, policy: str | None, out: Path) -> tuple[list[dict], str]:
    """(pairs, how they were made) from `path` (see the module docstring)."""
    from heal.feedback.preferences import load_preferences, pubmedqa_pairs, safety_pairs

    records = io.read_records(path)
    if not records:
        raise HealError(f"{path}: no records")
    if is_preference_file(records):
        return load_preferences(path), f"preference pairs from {path}"
    io.require_columns(records, ["prompt"], path, "expected preference pairs (prompt/chosen/rejected) or records "
                                                  "from `heal prep`")
    if script.judge:
        return _judge_pairs(path, script, policy, out), f"AI-labelled by {script.judge} (RLAIF)"
    if task == "pubmedqa":
        return pubmedqa_pairs(records, seed=script.pair_seed), "reference-derived: gold answer vs a wrong decision"
    if task == "safety":
        if not policy:
            raise HealError("safety pairs need policy samples: pass --policy_name (or a policy as --model_name)")
        for i, record in enumerate(records):
            record.setdefault("id", str(i))
        pairs = safety_pairs(records, policy_samples(policy, records, seed=script.pair_seed))
        if not pairs:
            raise HealError(f"{path}: the policy refused every request, so there is no compliant answer to reject; "
                            "use a preference file or --judge")
        return pairs, "reference-derived: safe response vs a compliant policy sample"
    raise HealError(f"{path}: has no chosen/rejected columns and --dataset {task} has no reference pairs; pass a "
                    "preference file, or --judge to label policy samples")


def _judge_pairs(path: str, script, policy: str | None, out: Path) -> list[dict]:
    from heal.feedback.label import LabelConfig, label
    from heal.feedback.preferences import load_preferences

    if not policy:
        raise HealError("--judge labelling samples answers from a policy: pass --policy_name")
    label(LabelConfig(judge=script.judge, output_path=str(out), model_name=policy, dataset_path=path,
                      judge_base_url=script.judge_base_url, seed=script.pair_seed, progress=False,
                      allow_credentialed_data_to_remote_endpoint=script.allow_credentialed_data_to_remote_endpoint))
    return load_preferences(out)


def load_pairs(script, policy: str | None, folder: Path) -> tuple[list[dict], list[dict], str]:
    """(train pairs, eval pairs, provenance)."""
    from heal.data.splits import split_eval

    if not script.dataset_path:
        raise HealError("--dataset_path is required: preference pairs, or a processed file to derive them from")
    pairs, how = derive_pairs(script.dataset_path, script.task(), script, policy, folder / "rlaif_pairs.jsonl")
    if script.eval_dataset_path:
        held, _ = derive_pairs(script.eval_dataset_path, script.task(), script, policy,
                               folder / "rlaif_pairs_eval.jsonl")
        return pairs, held, how
    train, held = split_eval(pairs, script.eval_split_size, script.pair_seed)
    return train, held, how
