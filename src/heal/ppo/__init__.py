"""`heal ppo`: HEAL's own PPO for language models (Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO").

Split by role: config.py (settings, TRL 1.12 PPOConfig names), data.py (prompts and their order), models.py (policy,
reference, value model), rewards.py (reward model / judge / rule), rollout.py (the experience maker), kl.py (KL
estimators and controller), advantages.py and losses.py (the math, pure torch functions), setup.py (a run's state and
checkpoints), evaluate.py (held-out before/after), report.py (metrics, curves, model card), train.py (the numbered
loop; docs/ppo.md lists the same steps). Nothing heavy is imported here.
"""
