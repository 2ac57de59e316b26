"""`heal ppo`: HEAL's own PPO for language models (Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO").

Split by role: config.py (settings, TRL 1.12 PPOConfig names), data.py (the order prompts are rolled out in),
models.py (policy, reference, value model), rollout.py (the experience maker), kl.py (KL estimators and controller),
advantages.py and losses.py (the math, pure torch functions), setup.py (a run's state and checkpoints), report.py
(metrics, curves, model card), train.py (the numbered loop; docs/ppo.md lists the same steps). What grpo shares with
it lives below both, in heal.rl (prompts, reward sources, sampling, held-out scoring); the run folder is heal.runs'.
Nothing heavy is imported here.
"""
