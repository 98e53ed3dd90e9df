"""Celery tasks of the gateway app: storing and purging the opt-in request log."""
from __future__ import annotations

from typing import Any

from celery import shared_task

from gateway.request_log import STORE_TASK, request_log_write
from gateway.request_log import request_log_purge as purge


@shared_task(name=STORE_TASK, ignore_result=True, acks_late=True)
def request_log_store(row: dict[str, Any]) -> int:
    """Store one redacted request log row (gateway.request_log redacted it before queueing)."""
    return request_log_write(rows=[row])


@shared_task(name="gateway.request_log_purge", ignore_result=True)
def request_log_purge() -> int:
    """Delete request logs older than request_logging.retention_days."""
    return purge()
