"""`heal sft`: supervised fine-tuning (config.py: settings; train.py: the stage; data.py: records)."""
