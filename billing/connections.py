"""The spend stream's and the limit counters' names in Redis, and the clients they are read through.

Clients come from the one registry (llmur.core.redis): the "limits" purpose on the request path,
"queue" for Celery tasks and management commands.
"""
from __future__ import annotations

from llmur.core.redis import async_redis as _async_redis
from llmur.core.redis import close_async as _close_async
from llmur.core.redis import redis_configured
from llmur.core.redis import sync_redis as _sync_redis

KEY_PREFIX = "llmur:rl:"               # rate-limit, reservation and budget counters
STREAM = "llmur:spend:events"          # durable spend events, drained by Celery
GROUP = "llmur-spend"                  # the consumer group of every drain worker
DEAD_LETTERS = "llmur:spend:dead"      # entries that could not be parsed, kept for inspection

__all__ = ["async_redis", "close_async", "redis_configured", "sync_redis"]


def async_redis():
    """The running event loop's client for admission, settlement and the spend stream."""
    return _async_redis("limits")


def sync_redis():
    return _sync_redis("queue")


async def close_async() -> None:
    await _close_async("limits")


_REF_PREFIX = {"key": "k", "user": "u", "project": "p", "team": "t", "organization": "o", "deployment": "d",
               "end_user": "e", "team_member": "m"}


def entity_ref(kind: str, pk: object) -> str:
    """How an entity is named in Redis keys: k12 for key 12, t3 for team 3, d<id> for a deployment."""
    return f"{_REF_PREFIX[kind]}{pk}"


def budget_key(kind: str, pk: object) -> str:
    return f"{KEY_PREFIX}bud:{entity_ref(kind, pk)}"
