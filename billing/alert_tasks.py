"""Celery tasks of budget alerts: deliver one alert channel with retries, sweep lost deliveries."""
from __future__ import annotations

from celery import shared_task

from billing.alerts import DELIVER_TASK, alert_deliveries_sweep, alert_delivery_attempt


@shared_task(bind=True, name=DELIVER_TASK, ignore_result=True, acks_late=True, max_retries=None)
def alert_deliver(self, delivery_id: int) -> None:
    """One attempt; on failure the task retries itself after the backoff alerts computed (until dead)."""
    wait = alert_delivery_attempt(delivery_id=delivery_id)
    if wait is not None:
        raise self.retry(countdown=wait)


@shared_task(name="billing.alert_sweep", ignore_result=True)
def alert_sweep() -> int:
    """Queue deliveries that were never queued (broker down) or whose retry was lost."""
    return len(alert_deliveries_sweep())
