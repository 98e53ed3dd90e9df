"""llmur's own benchmark: `python -m bench` (see docs/performance.md)."""
