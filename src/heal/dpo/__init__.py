"""`heal dpo`: direct preference optimisation on TRL's DPOTrainer (heal.dpo.train)."""
