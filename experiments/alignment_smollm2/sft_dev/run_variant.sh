#!/usr/bin/env bash
# One SFT variant of the development-split experiment (README.md): train, then red-team on the dev split.
#   bash experiments/alignment_smollm2/sft_dev/run_variant.sh OUT SFT_JSONL lora|all-linear|full
# OUT gets sft/ and rt_dev/; the dev split must be in $DEV (default runs/sft_dev; make_dev.py writes it). One torch
# thread, so two variants can run side by side on 2 cores (THREADS=2 for one alone); EPOCHS (default 2) and
# BATCH (red-team generation batch, default 16) and LR (full fine-tuning's learning rate, default 1e-4) can be set. Run from the repository root.
set -euo pipefail
out=$1 data=$2 kind=$3 dev=${DEV:-runs/sft_dev}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1}
common=(--model_name_or_path smollm2-135m --dataset other --dataset_path "$data" --max_length 320
        --num_train_epochs ${EPOCHS:-2} --per_device_train_batch_size 4 --gradient_accumulation_steps 2 --warmup_steps 5
        --lr_scheduler_type cosine --eval_split_size 0 --eval_strategy no --save_strategy no --logging_steps 5
        --report_to none --seed 0 --output_dir "$out/sft")
case $kind in
  lora) heal sft "${common[@]}" --use_peft --lora_r 16 --lora_alpha 32 --learning_rate 3e-4 ;;
  all-linear) heal sft "${common[@]}" --use_peft --lora_r 16 --lora_alpha 32 --learning_rate 3e-4 \
                --lora_target_modules all-linear ;;
  full) heal sft "${common[@]}" --learning_rate ${LR:-1e-4} ;;
  *) echo "kind must be lora, all-linear or full" >&2; exit 2 ;;
esac
heal redteam --model_path "$out/sft" --adversarial_prompts_path "$dev/dev_harmful.jsonl,$dev/dev_benign.jsonl" \
  --attacks direct --max_new_tokens 48 --batch_size ${BATCH:-16} --output_dir "$out/rt_dev"
python experiments/alignment_smollm2/sft_dev/dev_rates.py "$out/rt_dev/responses.jsonl"
