"""This process's routing state: shared through Redis when a Redis cache is configured
(gateway/routing/redis_state.py), else in-process (gateway/routing/local_state.py)."""
from __future__ import annotations

from django.conf import settings

from gateway.routing.local_state import LocalState
from gateway.routing.redis_state import RedisState

_state: LocalState | RedisState | None = None


def get_state() -> LocalState | RedisState:
    """This process's routing state: Redis-backed when a Redis cache is configured."""
    global _state
    if _state is None:
        cache = settings.LLMUR.cache
        _state = RedisState(cache.url) if cache.engine == "redis" else LocalState()
    return _state


async def close_state() -> None:
    global _state
    if _state is not None:
        await _state.close()
        _state = None
