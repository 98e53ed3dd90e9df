"""llmur's own benchmark: `python -m bench` (see README, "Performance")."""
