"""What the RL verbs (ppo, grpo) share, below both: prompts (prompts.py), the reward — a reward model, an AI judge
or a rule — parsed once into a RewardSpec (rewards.py), sampling answers (sampling.py) and the held-out before/after
scoring (heldout.py). Nothing heavy is imported here."""
