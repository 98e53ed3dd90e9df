"""The one Redis client registry: clients built from settings.LLMUR.cache (a URL, or Redis
Sentinel), one per purpose and per event loop.

Everything that talks to Redis (limits and the spend queue, routing state, the response cache,
version counters, health checks, django-redis, Celery's broker) gets its client, or its settings,
here, so a `sentinels:` block in cache_configuration switches all of them at once. A purpose names
the timeouts and pool its callers need (PURPOSES); `async_redis(purpose)` returns the running
loop's client for it, `sync_redis(purpose)` the process's, and lifespan's shutdown closes them.

Under Sentinel the clients ask the sentinels for the master of `service_name` whenever they open a
connection; after a failover, a connection to the old master fails, is dropped, and the next one
goes to the promoted replica. Clients retry a failed command on a fresh connection (with backoff)
for about as long as Sentinel takes to promote a replica, so a failover costs a short wait rather
than errors.
"""
from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings

# How long a command keeps retrying on connection errors while Sentinel promotes a replica:
# down-after-milliseconds plus the election, a few seconds in a typical deployment.
FAILOVER_RETRIES = 8
FAILOVER_BACKOFF_CAP_S = 1.0


def _cache() -> Any:
    return settings.LLMUR.cache


def _master_options(url: str) -> dict[str, Any]:
    """username, password, db and TLS of the master from the resolved URL (redis://user:pw@SERVICE/DB)."""
    from redis.connection import parse_url

    options = parse_url(url)
    for key in ("host", "port", "path"):
        options.pop(key, None)
    if options.pop("connection_class", None) is not None:   # rediss://
        options["ssl"] = True
    return options


def _sentinel_kwargs(cache: Any = None) -> dict[str, Any]:
    cache = cache or _cache()
    kwargs: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
    if cache.sentinel_password:
        kwargs["password"] = cache.sentinel_password
    if cache.sentinel_username:
        kwargs["username"] = cache.sentinel_username
    return kwargs


def _failover_retry(asyncio: bool):
    """Retry on connection errors and timeouts with capped exponential backoff (a failover in progress)."""
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

    if asyncio:
        from redis.asyncio.retry import Retry
    else:
        from redis.retry import Retry
    retry = Retry(ExponentialBackoff(cap=FAILOVER_BACKOFF_CAP_S, base=0.05), FAILOVER_RETRIES)
    retry.update_supported_errors([ConnectionError, TimeoutError, ReadOnlyError])
    return retry


def _explicit(url: str | None, cache: Any) -> str | None:
    """A URL other than the configured cache's (a test's own Redis, cache_params.url): used as is."""
    return url if url and url != cache.url else None


def sync_client(*, url: str | None = None, **options: Any):
    """A redis-py client (its own pool) for the configured Redis (or url); options as for redis.Redis."""
    import redis

    cache = _cache()
    if not cache.sentinels or _explicit(url, cache):
        return redis.Redis.from_url(url or cache.url, **options)
    from redis.sentinel import Sentinel

    options.pop("health_check_interval", None)
    options.setdefault("retry", _failover_retry(asyncio=False))
    sentinel = Sentinel(cache.sentinels, sentinel_kwargs=_sentinel_kwargs())
    return sentinel.master_for(cache.service_name, **(_master_options(cache.url) | options))


def async_client(*, url: str | None = None, max_connections: int | None = None, **options: Any):
    """A redis.asyncio client (its own pool) for the configured Redis, bound to the running event loop.

    max_connections makes the pool bounded and blocking (waits for a free connection) on a plain URL;
    under Sentinel the pool is bounded too and a client past the bound gets a ConnectionError.
    """
    import redis.asyncio as aioredis

    cache = _cache()
    if not cache.sentinels or _explicit(url, cache):
        if max_connections is None:
            return aioredis.Redis.from_url(url or cache.url, **options)
        timeout = options.pop("pool_timeout", 30.0)
        # redis-py resolves its driver name and version (importlib.metadata) in every connection it
        # builds unless given them; a client built on a URL gets them once, a pool built here did not
        # (4 % of a short bench cell while admission's connections were being opened).
        options.setdefault("driver_info", _driver_info())
        pool = aioredis.BlockingConnectionPool.from_url(url or cache.url, max_connections=max_connections, timeout=timeout,
                                                        **options)
        return aioredis.Redis(connection_pool=pool)
    from redis.asyncio.sentinel import Sentinel

    options.pop("pool_timeout", None)
    options.pop("health_check_interval", None)
    options.setdefault("retry", _failover_retry(asyncio=True))
    if max_connections is not None:
        options["max_connections"] = max_connections
    sentinel = Sentinel(cache.sentinels, sentinel_kwargs=_sentinel_kwargs())
    return sentinel.master_for(cache.service_name, **(_master_options(cache.url) | options))


_driver: list = []


def _driver_info():
    if not _driver:
        from redis.driver_info import DriverInfo

        _driver.append(DriverInfo())
    return _driver[0]


def django_cache(cache: Any, options: dict[str, Any]) -> dict[str, Any]:
    """settings.py's CACHES["default"] for django-redis (cache: the resolved cache_configuration).

    Under Sentinel, django-redis's SentinelConnectionFactory finds the master; reads go to the master
    too (the default client), so a value just written is what the next read sees.
    """
    entry: dict[str, Any] = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": cache.url, "KEY_PREFIX": "llmur",
                             "OPTIONS": dict(options)}
    if cache.sentinels:
        entry["OPTIONS"].update({"CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                                 "SENTINELS": list(cache.sentinels), "SENTINEL_KWARGS": _sentinel_kwargs(cache),
                                 "CONNECTION_POOL_KWARGS": {"retry": _failover_retry(asyncio=False)}})
    return entry


def celery_broker(cache: Any) -> tuple[str, dict[str, Any]]:
    """settings.py's broker_url and broker_transport_options: redis://… or sentinel://h1:p1;sentinel://h2:p2/DB."""
    if cache.engine != "redis":
        return "memory://", {}
    if not cache.sentinels:
        return cache.url, {}
    from urllib.parse import quote

    master = _master_options(cache.url)
    auth = ""
    if master.get("password"):
        auth = f"{quote(master.get('username') or '')}:{quote(master['password'])}@"
    db = master.get("db", 0)
    url = ";".join(f"sentinel://{auth}{host}:{port}/{db}" for host, port in cache.sentinels)
    transport: dict[str, Any] = {"master_name": cache.service_name}
    sentinel_kwargs = {k: v for k, v in _sentinel_kwargs(cache).items() if k in ("password", "username")}
    if sentinel_kwargs:
        transport["sentinel_kwargs"] = sentinel_kwargs
    return url, transport


# --------------------------------------------------------------------------- the registry

PURPOSES: dict[str, dict[str, Any]] = {
    # Admission, settlement and the spend stream on the request path. A bounded, blocking pool: a
    # burst of requests queues for one of 64 connections (each Lua call takes microseconds) instead
    # of opening hundreds at once, whose connect timeouts would read as an outage and flip the
    # process into degraded mode. Timeouts are generous because an overloaded event loop can make a
    # healthy Redis look slow; a Redis that is down refuses connections at once, and one that hangs
    # is given up on after socket_timeout, then bypassed (the circuit breaker).
    "limits": {"max_connections": 64, "pool_timeout": 30.0, "socket_connect_timeout": 2.0,
               "socket_timeout": 5.0, "retry_on_timeout": False, "health_check_interval": 30},
    # Version counters, idempotency records, health: small commands, quick to give up.
    "control": {"socket_connect_timeout": 2, "socket_timeout": 2, "health_check_interval": 30},
    # Shared routing state (cooldowns, usage): routing falls back to its own state at once.
    "routing": {"decode_responses": True, "socket_timeout": 1, "socket_connect_timeout": 1},
    # The response cache: a slow cache is a miss.
    "cache": {"socket_timeout": 1, "socket_connect_timeout": 1},
    # Celery tasks and commands draining the spend stream.
    "queue": {"socket_connect_timeout": 2, "socket_timeout": 10},
}

_async: dict[tuple[str, str | None], Any] = {}
_async_loop: asyncio.AbstractEventLoop | None = None
_sync: dict[tuple[str, str | None], Any] = {}


def redis_configured() -> bool:
    return settings.LLMUR.cache.engine == "redis"


def async_redis(purpose: str = "limits", *, url: str | None = None):
    """The running event loop's asyncio client for this purpose (and url, when not the configured one)."""
    global _async_loop
    loop = asyncio.get_running_loop()
    if loop is not _async_loop:
        _async.clear()          # a new loop (tests, reloads): the old loop's pools are unusable
        _async_loop = loop
    client = _async.get((purpose, url))
    if client is None:
        client = _async[(purpose, url)] = async_client(url=url, **PURPOSES[purpose])
    return client


def sync_redis(purpose: str = "queue", *, url: str | None = None):
    """The process's redis-py client for this purpose."""
    client = _sync.get((purpose, url))
    if client is None:
        client = _sync[(purpose, url)] = sync_client(url=url, **PURPOSES[purpose])
    return client


async def close_async(purpose: str | None = None) -> None:
    """Close the running loop's clients (of one purpose, or all)."""
    for name, url in [k for k in _async if purpose is None or k[0] == purpose]:
        client = _async.pop((name, url))
        try:
            await client.aclose()
        except Exception:  # noqa: BLE001 - closing at shutdown
            pass


def forget() -> None:
    """Drop every client without closing it (tests that point the settings at another Redis)."""
    _async.clear()
    _sync.clear()
