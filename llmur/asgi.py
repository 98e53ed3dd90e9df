"""ASGI entry point: the /v1 hot path skips Django's middleware and signals; everything else gets all of it.

Each sync middleware costs a thread hop per request under ASGI (DESIGN.md, "What the hot path can
afford"), and so do Django's request_started/request_finished signals, whose receiver
(close_old_connections) is sync. The API paths therefore go to a handler with an empty middleware
chain that sends neither signal: the hot path does not touch the database in steady state, and
the rare loads it does (auth cache misses, deployment reloads) release their connection
themselves. The admin, the management API and health checks keep the full chain.

Both handlers cap the request body at max_request_body_bytes and answer a larger one with 413 in
the OpenAI error shape before reading it whole; both send X-Content-Type-Options: nosniff (the
full chain through SecurityMiddleware, the bare handler itself).
"""
from __future__ import annotations

import asyncio
import gc
import io
import os
import re

import django
import orjson
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.urls import Resolver404
from django.urls.resolvers import RegexPattern, URLResolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")
django.setup(set_prefix=False)

from django.conf import settings  # noqa: E402

# Importing these registers their lifespan hooks (upstream session, Redis client) and builds the URL map
# now rather than on the first request.
import gateway.http  # noqa: E402,F401
import llmur.urls  # noqa: E402,F401
from gateway.api import router as llm_router  # noqa: E402
from llmur.api import api, error_response, not_found  # noqa: E402
from llmur.core.errors import LlmurError  # noqa: E402


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """The request body capped at max_request_body_bytes: 413 in the API's error shape, never read whole."""

    @staticmethod
    def declared_too_large(scope, limit: int) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value) > limit
                except ValueError:
                    return False
        return False

    @staticmethod
    async def read_capped(receive, limit: int) -> io.BytesIO:
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge()
                parts.append(chunk)
            if not message.get("more_body", False):
                break
        return io.BytesIO(b"".join(parts))

    @staticmethod
    async def too_large(send, limit: int, anthropic: bool = False) -> None:
        error = LlmurError(413, "invalid_request_error", f"Request body is larger than the gateway's limit of {limit} "
                           "bytes (max_request_body_bytes).", code="413")
        body = orjson.dumps(error.anthropic_body() if anthropic else error.openai_body())
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"x-content-type-options", b"nosniff"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class FullASGIHandler(BodyLimit, ASGIHandler):
    """Django's ASGI handler (every middleware) for the admin, the management API and the probes, body capped.

    Django itself would spool any body to disk and fail with RequestDataTooBig (a 500) when a view
    reads it.
    """

    async def handle(self, scope, receive, send):
        limit = settings.LLMUR.config.max_request_body_bytes
        if self.declared_too_large(scope, limit):
            await self.too_large(send, limit)
            return
        try:
            await super().handle(scope, receive, send)
        except BodyTooLarge:   # raised by read_body, before anything was sent
            await self.too_large(send, limit)

    async def read_body(self, receive):
        return await self.read_capped(receive, settings.LLMUR.config.max_request_body_bytes)


class BareASGIHandler(BodyLimit, ASGIHandler):
    """Django's ASGI handler with no middleware, no request signals and a capped in-memory body."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        self._middleware_chain = convert_exception_to_response(self._get_response_async)

    async def get_response_async(self, request):
        # Django's version also logs every 4xx/5xx answer through a worker thread; API errors are
        # answers to clients (over budget, bad model), logged by the pipeline where they matter.
        response = await self._middleware_chain(request)
        if response.status_code == 405 and not response.get("Content-Type", "").startswith("application/json"):
            allowed = response.get("Allow", "")
            response = _api_error(request, LlmurError(405, "invalid_request_error", f"{request.method} is not "
                                                      f"allowed on {request.path}; use {allowed}.", code="405"))
            response["Allow"] = allowed
        # What SecurityMiddleware adds on the full chain: browsers must not sniff a JSON answer as HTML.
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def resolve_request(self, request):
        # The LLM API's own routes first, from a flat resolver holding only them: the project's
        # resolver nests ninja's include under the admin and health routes, and builds a match per
        # level (about 7 % of a request's CPU). Anything else takes the full map as before.
        exact = _hot_views().get(request.path_info)
        if exact is not None:
            return exact, (), {}   # nothing on this path reads request.resolver_match
        try:
            match = _hot_resolver().resolve(request.path_info)
        except Resolver404:
            try:
                return super().resolve_request(request)
            except Resolver404:
                # An unknown API path answers in the API's error shape, not with Django's HTML page.
                return _unknown_endpoint, (), {}
        request.resolver_match = match
        return match

    async def handle(self, scope, receive, send):
        limit = settings.LLMUR.config.max_request_body_bytes
        anthropic = scope["path"].endswith("/messages")
        if self.declared_too_large(scope, limit):
            await self.too_large(send, limit, anthropic)
            return
        try:
            body = await self.read_capped(receive, limit)
        except RequestAborted:
            return
        except BodyTooLarge:
            await self.too_large(send, limit, anthropic)
            return
        request, error_response = self.create_request(scope, body)
        if request is None:
            await self.send_response(error_response, send)
            return

        async def process_request():
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                pass  # the client went away while the response was being sent
            finally:
                # A relayed stream ends its upstream call and settles its spend here, whether it was
                # sent in full, cut short, or never started because the client left first.
                close = getattr(response, "llmur_close", None)
                if close is not None:
                    await close()

        # As in Django: a disconnect while the view runs (or streams) cancels the view, which for a
        # stream closes the upstream connection at once.
        listener = asyncio.create_task(self.wait_for_disconnect(receive))
        view = asyncio.create_task(process_request())
        await asyncio.wait((listener, view), return_when=asyncio.FIRST_COMPLETED)
        for task in (listener, view):
            if not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        for task in (view, listener):
            error = None if task.cancelled() else task.exception()
            if error is not None and not isinstance(error, RequestAborted):
                raise error

    @staticmethod
    async def wait_for_disconnect(receive) -> None:
        """Return when the client has gone, which the server also says once the response is sent.

        Django's listen_for_disconnect raises RequestAborted there, on every request: the exception,
        its traceback and their frames form a reference cycle that holds the request, its body and
        both tasks until the cyclic collector runs (streams at c=128 kept tens of MB that way).
        Returning frees them as soon as the request ends.
        """
        message = await receive()
        if message["type"] != "http.disconnect":
            raise RuntimeError(f"unexpected ASGI message after the request body: {message['type']}")


_hot: list = []


def _hot_resolver() -> URLResolver:
    """A resolver over ninja's patterns for the LLM API router (gateway/api.py), built on first use."""
    if not _hot:
        hot_paths = {route.lstrip("/") for route in llm_router.path_operations}
        routes = {_ninja_route(path) for path in hot_paths}
        # ninja's own pattern objects, so a match names the same view and url_name as the full map.
        _hot.append(URLResolver(RegexPattern(r"^/"), [p for p in api.urls[0] if str(p.pattern) in routes]))
    return _hot[0]


_exact: dict[str, object] = {}


def _hot_views() -> dict[str, object]:
    """Path → view for the LLM API's routes without parameters (/v1/chat/completions, ...): a dict lookup."""
    if not _exact:
        for pattern in _hot_resolver().url_patterns:
            route = str(pattern.pattern)
            if "<" not in route:
                _exact["/" + route] = pattern.callback
    return _exact


def _ninja_route(path: str) -> str:
    """ninja's Django route for one of its paths: {path:model_id} becomes <path:model_id>."""
    return re.sub(r"\{(\w+:)?(\w+)\}", lambda m: f"<{m.group(1) or ''}{m.group(2)}>", path)


def _api_error(request, error: LlmurError):
    return error_response(error, request)


async def _unknown_endpoint(request):
    return not_found(request)


HOT_PREFIXES = ("/v1/", "/chat/", "/completions", "/embeddings", "/models", "/messages", "/health/liveliness")

_full = FullASGIHandler()
_bare = BareASGIHandler()


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    path = scope.get("path", "")
    handler = _bare if scope["type"] == "http" and path.startswith(HOT_PREFIXES) else _full
    await handler(scope, receive, send)


# OpenTelemetry server spans when otel.exporter_otlp_endpoint is set (llmur/core/observability.py); else unchanged.
from gateway.lifespan import lifespan, on_shutdown  # noqa: E402
from llmur import __version__  # noqa: E402
from llmur.core import observability  # noqa: E402

application = observability.asgi_tracing(application, version=__version__)
on_shutdown(observability.tracing_shutdown)

# The cyclic garbage collector: every object loaded so far (Django, the URL map, ninja's schemas)
# lives as long as the process, so it is moved out of the collector's sight; its full collections
# took about 5 % of a request's CPU rescanning them (bench --profile). The young generation is
# collected every 5,000 allocations instead of 700 (each collection rescans the objects of every
# request in flight); raised further (10,000/20/20), streams' reference cycles piled up to 175 MB.
gc.collect()
gc.freeze()
gc.set_threshold(5_000, 10, 10)
