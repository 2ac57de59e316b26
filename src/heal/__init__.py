"""HEAL: align language models for health care (prep → SFT → reward → PPO → eval → red-team).

Nothing heavy is imported here: `heal --help` must stay instant.
"""

__version__ = "0.1.0"
