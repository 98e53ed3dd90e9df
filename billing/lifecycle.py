"""Billing's part of the process lifetime: the spend writer, the price table, and the upkeep the
embedded mode runs itself (it has no Celery beat). Registered from BillingConfig.ready."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from billing.connections import redis_configured
from billing.pricing import prices
from billing.services import budget_reset_due, daily_spend_rollup
from billing.writer import writer
from llmur.core.db import db_call
from llmur.core.lifespan import on_shutdown, on_startup

logger = logging.getLogger("llmur.billing")

# Called with (kind, pk) for each budget the embedded upkeep reset: admission (gateway) registers
# its per-process counters here, so a reset budget is rebuilt from the database.
budget_reset_listeners: list[Callable[[str, int], None]] = []

_last_run = {"reset": 0.0, "rollup": 0.0}


async def embedded_upkeep() -> None:
    """Embedded mode: the writer's loop resets budgets every 10 s and rolls spend up every minute."""
    now = time.monotonic()
    if now - _last_run["reset"] >= 10:
        _last_run["reset"] = now
        for kind, pk in await db_call(budget_reset_due):
            for listener in budget_reset_listeners:
                listener(kind, pk)
    if now - _last_run["rollup"] >= 60:
        _last_run["rollup"] = now
        await db_call(daily_spend_rollup)


async def start() -> None:
    if not redis_configured():
        writer.start()   # embedded: its loop also runs budget resets and the daily rollup
    try:
        await prices.ensure_loaded()
    except Exception as exc:  # noqa: BLE001 - the database may come later; pricing retries on use
        logger.warning("prices not loaded at start: %s", exc.__class__.__name__)


async def stop() -> None:
    """Flush buffered spend: nothing is lost on a graceful shutdown."""
    await writer.stop()


def register() -> None:
    on_startup(start)
    on_shutdown(stop)
    if not redis_configured():
        writer.after_flush.append(embedded_upkeep)
