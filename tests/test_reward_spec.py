"""`--reward` / `--reward_model_path` parsed once into a RewardSpec (heal.rl.rewards), shared by ppo and grpo."""

import pytest

from heal.errors import HealError
from heal.rl.rewards import RewardSpec, parse_reward


def test_each_kind_of_reward_parses_to_its_spec():
    model = parse_reward(None, "models/rm")
    assert model == RewardSpec("model", "models/rm") and model.reward_model_path == "models/rm"
    assert model.judge_spec is None and model.fingerprint() == "models/rm"
    assert model.describe() == "the reward model `models/rm`"

    judge = parse_reward("judge:hf:models/judge", "models/rm")  # --reward wins over --reward_model_path
    assert (judge.kind, judge.target, judge.reward_model_path) == ("judge", "hf:models/judge", None)
    assert judge.fingerprint() == "judge:hf:models/judge" and "d-RLAIF" in judge.describe()

    rule = parse_reward("rule:pubmedqa", None)
    assert (rule.kind, rule.judge_spec) == ("rule", "rule:pubmedqa") and "verifiable rule" in rule.describe()


@pytest.mark.parametrize("reward, path, needle", [
    (None, None, "no reward"), ("rule:sql", None, "unknown rule"), ("gpt-4", None, "use judge:<spec>"),
    ("judge:hf", None, "name the model")])
def test_a_bad_reward_is_one_clear_error(reward, path, needle):
    with pytest.raises(HealError, match=needle):
        parse_reward(reward, path)
