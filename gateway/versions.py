"""Shared version counters in Redis: a process compares them with the ones it cached under, so a
change made by one worker (a key blocked, a deployment added) reaches every other within a request."""
from __future__ import annotations

import logging

from llmur.core.redis import sync_redis

logger = logging.getLogger("llmur.gateway.versions")


def bump_version(name: str) -> None:
    """INCR a shared version counter; a Redis outage is logged, local caches still expire by TTL."""
    try:
        sync_redis("control").incr(name)
    except Exception:  # noqa: BLE001
        logger.warning("could not bump %s: Redis unreachable; caches expire by TTL instead", name)
