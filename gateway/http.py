"""Per-process clients of the request path: the pooled upstream HTTP session and the async Redis client.

One aiohttp ClientSession per worker process keeps upstream connections alive across requests
(plain httpx's pool collapses under concurrency, see DESIGN.md). It is opened by the ASGI lifespan
and closed at shutdown; a request that arrives on another event loop (Django's test client runs
each request on a fresh loop) gets a session of its own loop instead of a broken one.
"""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from django.conf import settings

from llmur.core.lifespan import on_shutdown, on_startup
from llmur.core.redis import async_redis, close_async

logger = logging.getLogger("llmur.gateway.http")

# Enough connections for a busy worker; per-host too, since most installations have few upstream hosts.
CONNECTION_LIMIT = 1000
KEEPALIVE_SECONDS = 60

_session: aiohttp.ClientSession | None = None


def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=CONNECTION_LIMIT, limit_per_host=CONNECTION_LIMIT,
                                     keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=300)
    # Bodies are passed through as bytes: no automatic decompression surprises, no cookie jar shared
    # between callers.
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                 auto_decompress=True, raise_for_status=False)


def session() -> aiohttp.ClientSession:
    """The upstream session of the running event loop."""
    global _session
    current = _session
    if current is None or current.closed or current._loop is not asyncio.get_running_loop():
        current = _session = _new_session()
    return current


def redis():
    """The async Redis client of the running event loop, or None in embedded (local cache) mode."""
    if settings.LLMUR.cache.engine != "redis":
        return None
    return async_redis("control")


@on_startup
async def open_clients() -> None:
    session()
    redis()


@on_shutdown
async def close_clients() -> None:
    global _session
    if _session is not None and not _session.closed:
        await _session.close()
    _session = None
    await close_async("control")
