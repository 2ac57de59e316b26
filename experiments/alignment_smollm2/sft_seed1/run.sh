#!/usr/bin/env bash
# The preset's SFT stage with seed 1 (every other setting as in the preset), red-teamed on the preset's held-out
# prompts. From the repository root:  bash experiments/alignment_smollm2/sft_seed1/run.sh runs/align_smollm2 runs/sft_seed1
set -euo pipefail
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
R=${1:-runs/align_smollm2} O=${2:-runs/sft_seed1}  # a finished preset run (its data/), an output folder
.venv/bin/heal sft --model_name_or_path smollm2-135m --dataset other --dataset_path $R/data/sft.jsonl --use_peft false \
  --max_length 320 --num_train_epochs 2 --per_device_train_batch_size 4 --gradient_accumulation_steps 2 \
  --learning_rate 1e-4 --warmup_steps 5 --lr_scheduler_type cosine --eval_split_size 0 --eval_strategy no \
  --save_strategy no --logging_steps 5 --report_to none --seed 1 --output_dir $O/sft
.venv/bin/heal redteam --model_path $O/sft --adversarial_prompts_path $R/data/heldout_harmful.jsonl,$R/data/heldout_benign.jsonl \
  --attacks direct --max_new_tokens 48 --batch_size 16 --output_dir $O/redteam
