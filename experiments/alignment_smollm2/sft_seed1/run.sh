#!/usr/bin/env bash
# The preset's SFT stage with seed 1 (every other setting read from the preset run's own stage config), red-teamed
# on the preset's held-out prompts. From the repository root:
#   bash experiments/alignment_smollm2/sft_seed1/run.sh runs/align_smollm2 runs/sft_seed1
set -euo pipefail
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
run=${1:-runs/align_smollm2} out=${2:-runs/sft_seed1}  # a finished preset run, an output folder
heal sft --config "$run/stages/sft.yaml" --seed 1 --output_dir "$out/sft"
heal redteam --config "$run/stages/redteam_sft.yaml" --model_path "$out/sft" --output_dir "$out/redteam"
