"""GRPO's reward functions: the reward sources of `heal ppo` (heal.rl.rewards), as TRL reward functions over
completion texts.

    reward = make_reward_function(spec, script, credentialed)   # reward(prompts, completions, raw_prompt=…, …)

- Reward model: the pair is formatted exactly as in reward training (heal.reward.scoring.pair_texts) and scored,
  normalised with the mean/std stored in the model (references ≈ 0).
- Judge (`--reward judge:<spec>`) and rule (`--reward rule:pubmedqa`, `rule:refusal`): `Judge.score` on the answer,
  with the record's label/reference/source columns (the dataset carries them to TRL, which passes them here).
"""

from __future__ import annotations


def make_reward_function(spec, script, credentialed: bool):
    """A TRL reward function for `spec` (a heal.rl.rewards.RewardSpec)."""
    if spec.kind == "model":
        return _reward_model_function(spec.target)
    return _judge_function(spec.target, script.judge_base_url, credentialed,
                           script.allow_credentialed_data_to_remote_endpoint, script.constitution)


def _reward_model_function(path: str):
    from heal.reward.scoring import RewardScorer

    scorer = RewardScorer(path)

    def reward_model(prompts, completions, raw_prompt, **_) -> list[float]:
        return scorer.score(list(raw_prompt), [_text(c) for c in completions])

    return reward_model


def _judge_function(spec: str, base_url: str | None, credentialed: bool, allow_remote: bool,
                    constitution: str | None = None):
    from heal.feedback.judges import JudgeItem, make_judge

    judge = make_judge(spec, base_url=base_url, constitution=constitution, credentialed=credentialed,
                       allow_remote=allow_remote)

    def judge_reward(prompts, completions, raw_prompt, label=None, reference=None, source=None, **_) -> list[float]:
        n = len(completions)
        label, reference, source = (list(c) if c is not None else [""] * n for c in (label, reference, source))
        items = [JudgeItem(prompt=p, a=_text(c), label=lab or None, reference=ref or None, source=src or None)
                 for p, c, lab, ref, src in zip(raw_prompt, completions, label, reference, source)]
        judge.guard(items)
        return judge.score(items)

    judge_reward.__name__ = spec.replace(":", "_").replace("/", "_")
    return judge_reward


def _text(completion) -> str:
    """A completion is a string (standard prompts) or a list of messages (conversational)."""
    if isinstance(completion, str):
        return completion
    return " ".join(str(m.get("content", "")) for m in completion)
