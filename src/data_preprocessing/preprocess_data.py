"""Seed-compatible entry point: `python src/data_preprocessing/preprocess_data.py ...` runs `heal prep ...` with the same flags."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # src/: works without `pip install -e .` too

from heal.cli import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run(["prep", *sys.argv[1:]]))
