"""`heal redteam`: jailbreak and harmful-request testing, over-refusal, per-attack × category report."""
