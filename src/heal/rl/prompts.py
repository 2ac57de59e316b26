"""The RL verbs' prompts (ppo, grpo): where they come from and the held-out split.

Prompts are records with a `prompt` column (from `heal prep`, or a preference file, whose prompts are used once
each). The columns a reward needs travel with them: `label` (rule:pubmedqa), `reference` (embedding judge),
`source` (the PHI guard). Without --dataset_path, the prompts are those the reward model was trained on: `heal
reward` records its --dataset_path in <reward model>/resolved_config.yaml.
"""

from __future__ import annotations

from pathlib import Path

from heal.data import io
from heal.errors import HealError
from heal.models import run_folder


def reward_model_prompts_path(reward_model_path: str) -> str:
    """The --dataset_path recorded in the reward model's resolved_config.yaml (or heal_run.json)."""
    import yaml

    folder = Path(reward_model_path)
    config_file = folder / run_folder.CONFIG_FILE
    recorded = None
    if config_file.exists():
        recorded = (yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}).get("dataset_path")
    if recorded is None:
        recorded = ((run_folder.read_run(folder) or {}).get("fingerprint") or {}).get("dataset_path")
    if not recorded:
        raise HealError(f"--reward_model_path {folder}: no dataset_path recorded in its {run_folder.CONFIG_FILE}; "
                        "pass the prompts with --dataset_path")
    if not Path(recorded).exists():
        raise HealError(f"{config_file}: its dataset_path {recorded} does not exist (from here); pass the prompts "
                        "with --dataset_path")
    return str(recorded)


def load_prompts(path: str, what: str = "--dataset_path") -> list[dict]:
    """Prompt records from `path`, one per distinct prompt (preference files repeat prompts across pairs)."""
    records = io.read_records(path)
    io.require_columns(records, ["prompt"], path, f"{what} needs prompt records (heal prep output or preference "
                                                  "pairs)")
    seen, prompts = set(), []
    for record in records:
        text = str(record.get("prompt") or "").strip()
        if text and text not in seen:
            seen.add(text)
            prompts.append(record)
    if not prompts:
        raise HealError(f"{path}: every prompt is empty")
    return prompts


def split_prompts(script, reward_model_path: str | None, seed: int) -> tuple[list[dict], list[dict], str]:
    """(training prompts, held-out prompts, the training file)."""
    from heal.data.splits import split_eval

    path = script.dataset_path
    if not path:
        if not reward_model_path:
            raise HealError("--dataset_path is required (prompt records): with --reward judge:/rule: there is no "
                            "reward model whose prompts could be used")
        path = reward_model_prompts_path(reward_model_path)
    records = load_prompts(path)
    if script.eval_dataset_path:
        train, held = records, load_prompts(script.eval_dataset_path, "--eval_dataset_path")
    else:
        train, held = split_eval(records, script.eval_split_size, seed)
    if script.max_train_samples is not None:
        if script.max_train_samples < 1:
            raise HealError(f"--max_train_samples {script.max_train_samples}: must be at least 1")
        train = train[:script.max_train_samples]
    if not train:
        raise HealError(f"{path}: no training prompts left after holding out --eval_split_size "
                        f"{script.eval_split_size:g}")
    return train, held[:script.max_eval_samples], path
