"""`heal grpo`: group relative policy optimisation on TRL's GRPOTrainer (heal.grpo.train)."""
