#!/usr/bin/env bash
# One arm of the RL development-split probe (README.md): d-RLAIF (PPO on the constitution judge's score) from the
# preset's SFT model with the preset's PPO settings, then the red-team on the development split.
#   bash experiments/alignment_smollm2/rl_dev/run_probe.sh OUT PROMPTS_JSONL MAX_STEPS
# SFT (default runs/align_smollm2/sft) is the SFT model; DEV (default runs/sft_dev) holds the dev split that
# experiments/alignment_smollm2/sft_dev/make_dev.py writes. One torch thread (THREADS=2 for one arm alone).
# CONSTITUTION, if set, is passed as --constitution (over-refusal-costs: a refused benign request scores -0.5, not 0).
# Run from the repository root.
set -euo pipefail
out=$1 prompts=$2 steps=$3 sft=${SFT:-runs/align_smollm2/sft} dev=${DEV:-runs/sft_dev}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
heal ppo ${CONSTITUTION:+--constitution "$CONSTITUTION"} --model_name_or_path "$sft" --dataset safety --dataset_path "$prompts" \
  --eval_split_size 0.15 --use_peft true --lora_r 16 --lora_alpha 32 --response_length 48 --temperature 0.7 \
  --per_device_train_batch_size 8 --max_steps "$steps" --num_ppo_epochs 4 --learning_rate 5e-4 --kl_coef 0.05 \
  --max_prompt_length 256 --save_steps "$steps" --seed 0 --share_backbone true --reward judge:safety:combined \
  --gold_reward judge:safety:rules --eval_steps 4 --keep_best true --disable_tqdm true --output_dir "$out/policy"
heal redteam --model_path "$out/policy" --adversarial_prompts_path "$dev/dev_harmful.jsonl,$dev/dev_benign.jsonl" \
  --attacks direct --max_new_tokens 48 --batch_size 64 --output_dir "$out/rt_dev"
python experiments/alignment_smollm2/sft_dev/dev_rates.py "$out/rt_dev/responses.jsonl"
