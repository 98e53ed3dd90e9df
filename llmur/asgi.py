"""ASGI entry point: the /v1 hot path skips Django's middleware; everything else gets all of it.

Each sync middleware costs a thread hop per request under ASGI (DESIGN.md, "What the hot path can
afford"), so the API paths go to a handler whose middleware chain is empty. The admin, the
management API and health checks keep the full chain.
"""
from __future__ import annotations

import os

import django
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")
django.setup(set_prefix=False)


class BareASGIHandler(ASGIHandler):
    """Django's ASGI handler with no middleware at all."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)


HOT_PREFIXES = ("/v1/", "/chat/", "/completions", "/embeddings", "/models", "/messages", "/health/liveliness")

_full = ASGIHandler()
_bare = BareASGIHandler()


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        from gateway.lifespan import lifespan

        await lifespan(scope, receive, send)
        return
    path = scope.get("path", "")
    handler = _bare if scope["type"] == "http" and path.startswith(HOT_PREFIXES) else _full
    await handler(scope, receive, send)
