"""Evaluation, red-teaming and robustness (heal eval, heal redteam); see docs/eval.md and docs/redteam.md."""
