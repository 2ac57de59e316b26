"""Task metrics (heal eval): PubMedQA accuracy/macro-F1, summary ROUGE, robustness; see docs/eval.md."""
