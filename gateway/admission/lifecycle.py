"""Admission's process lifetime: script and stream setup at start, connections closed at shutdown, readiness."""
from __future__ import annotations

import logging
import time

from django.conf import settings

from billing.connections import GROUP, STREAM, async_redis, close_async, entity_ref, redis_configured
from billing.lifecycle import budget_reset_listeners
from gateway.admission import breaker, local, scripts
from llmur.core.health import readiness_check
from llmur.core.lifespan import on_shutdown, on_startup

logger = logging.getLogger("llmur.limits")


@on_startup
async def _start() -> None:
    if redis_configured():
        try:
            client = async_redis()
            scripts.runner.script("admit")
            await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP, or Redis not up yet (degraded mode)
            if "BUSYGROUP" not in str(exc):
                logger.warning("spend stream not prepared at start: %s", exc.__class__.__name__)


@on_shutdown
async def _stop() -> None:
    connections, scripts.runner.connections = scripts.runner.connections, None
    if connections is not None:
        await connections.aclose()
    await close_async()


@readiness_check("limits")
def readiness() -> tuple[bool, str]:
    if not redis_configured():
        return True, "per-process (embedded)"
    if breaker.state.degraded_since is not None:
        since = time.strftime("%H:%M:%S", time.gmtime(breaker.state.degraded_since))
        policy = settings.LLMUR.config.cache_failure_policy
        return True, f"degraded since {since} UTC: redis unreachable ({policy})"
    return True, "redis"


# A budget the embedded upkeep reset is rebuilt from the database on its next use.
budget_reset_listeners.append(lambda kind, pk: local.counters.forget_budget(entity_ref(kind, pk)))
