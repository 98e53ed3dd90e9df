"""Celery tasks of the billing app: drain the spend stream, roll up daily spend, reset budgets."""
from __future__ import annotations

import logging

from celery import shared_task

from billing.connections import budget_key, redis_configured, sync_redis
from billing.queue import drain
from billing.services import budget_reset_due
from billing.services import daily_spend_rollup as rollup

logger = logging.getLogger("llmur.billing")


@shared_task(name="billing.spend_drain", ignore_result=True)
def spend_drain(max_seconds: float = 20.0) -> int:
    """Record every spend event waiting in the Redis stream (no-op without Redis)."""
    if not redis_configured():
        return 0
    return drain(max_seconds=max_seconds)


@shared_task(name="billing.daily_spend_rollup", ignore_result=True)
def daily_spend_rollup() -> int:
    return len(rollup())


@shared_task(name="billing.budget_reset", ignore_result=True)
def budget_reset() -> int:
    """Reset budgets whose period passed, then drop their Redis counters so they are rebuilt at 0."""
    reset = budget_reset_due()
    if reset and redis_configured():
        sync_redis().delete(*(budget_key(kind, pk) for kind, pk in reset))
    return len(reset)


# Celery discovers tasks.py modules only; the alert tasks live beside the alerts they deliver.
from billing.alert_tasks import alert_deliver, alert_sweep  # noqa: E402,F401
