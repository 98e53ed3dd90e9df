"""The ASGI lifespan and its hooks live on the floor (llmur.core.lifespan); the server imports it here."""
from llmur.core.lifespan import lifespan, on_shutdown, on_startup  # noqa: F401
