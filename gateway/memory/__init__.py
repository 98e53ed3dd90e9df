"""Cross-session memory on the request path (docs/memory.md).

- settings.py: a key's memory settings, resolved once when the key is loaded;
- inject.py: the session of a request, and the framed summaries its first request gets;
- turns.py: the turn a request adds to its spend event (stored by memory/services.py);
- summarize.py: summarizing a finished session through llmur's own router, charged as spend.
With memory off for a key, the request path reads one field of its Principal and nothing else.
"""
