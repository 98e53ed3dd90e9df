"""Cross-session memory: session turns, summaries and the end user ↔ project mapping (docs/memory.md).

Between billing and the gateway: it reads accounts and billing; the gateway injects summaries and
writes them (gateway/memory/).
"""
