"""llmur: a self-hosted LLM gateway built on Django.

Importing the package loads nothing: the floor (llmur.core) must load without the roof above
it. The Celery app is llmur.celery (`celery -A llmur.celery worker`).
"""

__version__ = "0.1.0"
