"""Feedback for alignment: preference data, AI judges (RLAIF), the judgment cache and the PHI guard."""
