"""The benign-heavy RL prompts of the probe (README.md): the preset's `prompts` part with every written general
benign request instead of a seeded 60 of them (396 prompts: 276 benign, 120 harmful).

    python experiments/alignment_smollm2/rl_dev/make_prompts.py runs/rl_dev/prompts_benign_heavy.jsonl
"""

import sys

from heal.cli import main
from heal.data import alignment

if __name__ == "__main__":
    alignment.SIZES["prompt_general_benign"] = len(alignment._benign_general_answers())
    sys.argv = ["heal", "prep", "--dataset", "alignment", "--input_path", "../shared/data", "--records", "prompts",
                "--output_path", sys.argv[1]]
    main()
