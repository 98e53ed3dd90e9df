"""Named periods operators pick ("Last 7 days", "Last month"), as days in the configured time zone."""
from __future__ import annotations

import datetime as dt

from django.utils import timezone


def local_today() -> dt.date:
    return timezone.localdate()


PRESETS = [("today", "Today"), ("yesterday", "Yesterday"), ("7d", "Last 7 days"), ("30d", "Last 30 days"),
           ("month", "This month"), ("last-month", "Last month")]


def preset_days(value: str, today: dt.date | None = None) -> tuple[dt.date, dt.date] | None:
    """The first and last day (in the configured time zone) a preset names."""
    today = today or local_today()
    if value == "today":
        return today, today
    if value == "yesterday":
        return today - dt.timedelta(days=1), today - dt.timedelta(days=1)
    if value == "7d":
        return today - dt.timedelta(days=6), today
    if value == "30d":
        return today - dt.timedelta(days=29), today
    if value == "month":
        return today.replace(day=1), today
    if value == "last-month":
        last = today.replace(day=1) - dt.timedelta(days=1)
        return last.replace(day=1), last
    return None
