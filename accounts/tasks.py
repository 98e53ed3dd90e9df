"""Celery tasks of accounts: take nothing or ids, call one service."""
from __future__ import annotations

from celery import shared_task

from accounts import services


@shared_task(name="accounts.device_authorization_purge", ignore_result=True)
def device_authorization_purge() -> int:
    """Delete agent sign-ins that expired uncollected (and the keys nobody collected)."""
    return services.device_authorization_purge()
