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


def prompt_room(config, max_prompt_length: int | None, response_length: int, response_flag: str) -> int:
    """--max_prompt_length, or what the model's context (`config`, None: 2048 tokens) leaves beside the response."""
    context = getattr(config, "max_position_embeddings", None) or 2048
    room = context - response_length
    if room < 1:
        raise HealError(f"{response_flag} {response_length} leaves no room for the prompt in the model's "
                        f"{context}-token context; lower it")
    if max_prompt_length and max_prompt_length > room:
        raise HealError(f"--max_prompt_length {max_prompt_length} + {response_flag} {response_length} exceed the "
                        f"model's {context}-token context; lower one of them")
    return max_prompt_length or room


def check_prompt_lengths(model_args, script, prompt_sets: list[tuple[list[dict], str]], max_prompt_length: int | None,
                         response_length: int, response_flag: str) -> None:
    """Before anything is loaded or written: without --max_prompt_length, a prompt that does not fit the context
    beside the response is an error (cutting it silently would train on text the user never wrote); with it, longer
    prompts keep their last tokens. `prompt_sets`: (records, the file they came from)."""
    from transformers import AutoConfig

    from heal.models.loading import load_tokenizer, model_location
    from heal.rl.sampling import encode_prompts

    name = model_args.model_name_or_path
    revision = getattr(model_args, "model_revision", None)
    remote_code = getattr(model_args, "trust_remote_code", False)  # not every verb's ModelConfig has it
    tokenizer = load_tokenizer(name, revision, remote_code)
    try:
        config = AutoConfig.from_pretrained(model_location(name), revision=revision, trust_remote_code=remote_code)
    except (OSError, ValueError):
        config = None  # an adapter folder: the model loader finds its base (and 2048 tokens are assumed here)
    room = prompt_room(config, max_prompt_length, response_length, response_flag)
    if max_prompt_length:
        return
    for records, path in prompt_sets:
        lengths = [len(ids) for ids in encode_prompts(tokenizer, records, script.system_prompt, 10 ** 9)]
        too_long = [(n, r) for n, r in zip(lengths, records) if n > room]
        if too_long:
            n, record = max(too_long, key=lambda pair: pair[0])
            start = " ".join(str(record["prompt"]).split())[:60]
            raise HealError(f"{path}: {len(too_long)} prompt(s) longer than the {room} tokens the policy's context "
                            f"leaves beside {response_flag} {response_length} (longest: {n} tokens, \"{start}…\"); "
                            f"shorten them, lower {response_flag}, or pass --max_prompt_length N to keep each "
                            "prompt's last N tokens")
