"""The floor: what every app may import and which imports nothing of llmur's above it."""
