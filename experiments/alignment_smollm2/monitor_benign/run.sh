#!/usr/bin/env bash
# One PPO arm of the preset again, its monitor also reading 90 risky-sounding benign requests (SFT training prompts
# since session 12; README.md). Run from the repository root after a finished preset run:
#   bash experiments/alignment_smollm2/monitor_benign/run.sh RUN_DIR OUT_DIR rlhf|rlaif|drlaif
# The same SFT model, reward, training prompts, seed and settings as RUN_DIR's ppo_<arm> stage; only the monitor's
# prompts differ. Then the preset's red-team and eval of the kept model.
set -euo pipefail
run=$1 out=$2 arm=$3
python experiments/alignment_smollm2/monitor_benign/make_files.py "$run" "$out"
heal ppo --config "$run/stages/ppo_$arm.yaml" --dataset_path "$out/train.jsonl" \
  --eval_dataset_path "$out/monitor.jsonl" --output_dir "$out/ppo_$arm"
heal redteam --config "$run/stages/redteam_$arm.yaml" --model_path "$out/ppo_$arm" --output_dir "$out/redteam_$arm"
heal eval --config "$run/stages/eval_$arm.yaml" --model_path "$out/ppo_$arm" --output_dir "$out/eval_$arm"
