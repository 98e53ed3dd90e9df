"""Routing among the deployments of a model group: strategies, shared state, cooldowns, fallbacks.

gateway/router.py composes these into the retry/fallback loop the pipeline calls.
"""
