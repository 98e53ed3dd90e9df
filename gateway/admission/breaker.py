"""Whether Redis is being bypassed (a simple circuit breaker), and the recovery once it answers again."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from django.conf import settings

from billing.connections import async_redis, budget_key
from billing.writer import writer
from gateway.admission import local
from llmur.core.breaker import CircuitBreaker

logger = logging.getLogger("llmur.limits")

REDIS_RETRY_SECONDS = 1.0           # how long a failed Redis stays bypassed before the next probe

try:
    from prometheus_client import Counter

    DEGRADED_EVENTS = Counter("llmur_limits_degraded_total",
                              "Requests admitted or settled without Redis (per-process limits)", ["step"])
except ValueError:  # registered already (module reloaded in tests)
    DEGRADED_EVENTS = None


class RedisBreaker:
    """Admission's circuit breaker on Redis, with what an outage means here: a log line and a metric
    when it begins, and on recovery the budget counters spent around meanwhile dropped."""

    def __init__(self) -> None:
        self.circuit = CircuitBreaker(REDIS_RETRY_SECONDS)
        self.dirty: set[tuple[str, Any]] = set()   # budget counters this process spent around
        self.recovering: asyncio.Task | None = None

    @property
    def degraded_since(self) -> float | None:
        return self.circuit.down_since

    def usable(self) -> bool:
        return self.circuit.usable()

    def failed(self, step: str, exc: BaseException) -> None:
        if self.circuit.failed():
            policy = settings.LLMUR.config.cache_failure_policy
            logger.warning("redis unreachable (%s during %s): %s", exc.__class__.__name__, step,
                           "limits per process, spend events to the database" if policy == "fail_open"
                           else "refusing requests (fail_closed)")
        if DEGRADED_EVENTS is not None:
            DEGRADED_EVENTS.labels(step=step).inc()

    def succeeded(self) -> None:
        if self.circuit.succeeded():
            logger.warning("redis reachable again: limits and spend back on Redis")
            if self.recovering is None or self.recovering.done():
                self.recovering = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        """Write what was recorded meanwhile, then drop the budget counters it went around."""
        try:
            await writer.flush()
            dirty, self.dirty = self.dirty, set()
            if dirty:
                await async_redis().delete(*(budget_key(kind, pk) for kind, pk in dirty))
            local.counters.clear()
        except Exception as exc:  # noqa: BLE001 - next recovery tries again
            logger.warning("recovery after redis outage incomplete: %s", exc.__class__.__name__)


state = RedisBreaker()


def redis_errors() -> tuple[type[BaseException], ...]:
    return (redis.ConnectionError, redis.TimeoutError, OSError, asyncio.TimeoutError)


def fail_open() -> bool:
    return settings.LLMUR.config.cache_failure_policy == "fail_open"
