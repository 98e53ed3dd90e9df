"""Where composition (settings, startup) builds Redis settings: the registry lives in llmur.core.redis."""
from llmur.core.redis import celery_broker, django_cache, sync_client  # noqa: F401
