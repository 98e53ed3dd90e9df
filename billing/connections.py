"""Redis clients for limits and the spend queue: one pool per process (and per event loop).

The async client (redis-py asyncio, hiredis parser when installed) serves the request path;
the sync client serves Celery tasks and management commands.
"""
from __future__ import annotations

import asyncio
from typing import Any

from django.conf import settings

from llmur import redis_clients

KEY_PREFIX = "llmur:rl:"               # rate-limit, reservation and budget counters
STREAM = "llmur:spend:events"          # durable spend events, drained by Celery
GROUP = "llmur-spend"                  # the consumer group of every drain worker
DEAD_LETTERS = "llmur:spend:dead"      # entries that could not be parsed, kept for inspection

_async_clients: dict[int, Any] = {}
_sync_client: Any = None


def redis_configured() -> bool:
    return settings.LLMUR.cache.engine == "redis"


def async_redis():
    """The process's asyncio Redis client for the running event loop."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(id(loop))
    if client is None:
        # A bounded, blocking pool: a burst of requests queues for one of 64 connections (each
        # Lua call takes microseconds) instead of opening hundreds at once, whose connect
        # timeouts would read as an outage and flip the process into degraded mode.
        # Timeouts are generous because an overloaded event loop can make a healthy Redis look
        # slow; a Redis that is down refuses connections at once, and one that hangs is given up
        # on after socket_timeout, then bypassed (gateway.limits).
        client = redis_clients.async_client(
            max_connections=64, pool_timeout=30.0, socket_connect_timeout=2.0,
            socket_timeout=5.0, retry_on_timeout=False, health_check_interval=30)
        _async_clients.clear()  # a new loop (tests, reloads): the old loop's pool is unusable
        _async_clients[id(loop)] = client
    return client


def sync_redis():
    global _sync_client
    if _sync_client is None:
        _sync_client = redis_clients.sync_client(socket_connect_timeout=2, socket_timeout=10)
    return _sync_client


async def close_async() -> None:
    for client in list(_async_clients.values()):
        try:
            await client.aclose()
        except Exception:  # noqa: BLE001 - closing at shutdown
            pass
    _async_clients.clear()


_REF_PREFIX = {"key": "k", "user": "u", "project": "p", "team": "t", "organization": "o", "deployment": "d"}


def entity_ref(kind: str, pk: object) -> str:
    """How an entity is named in Redis keys: k12 for key 12, t3 for team 3, d<id> for a deployment."""
    return f"{_REF_PREFIX[kind]}{pk}"


def budget_key(kind: str, pk: object) -> str:
    return f"{KEY_PREFIX}bud:{entity_ref(kind, pk)}"
