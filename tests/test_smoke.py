import subprocess
import sys


def test_help_lists_every_verb():
    out = subprocess.run([sys.executable, "-m", "heal.cli", "--help"], capture_output=True, text=True, check=True)
    for verb in ("prep", "sft", "reward", "ppo", "eval", "redteam", "quickstart"):
        assert f"  {verb} " in out.stdout
