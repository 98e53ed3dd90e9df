"""The coarse rollups (SpendByModel, SpendByTeam, SpendByOwner): DailySpend summed to fewer columns.

They are derived from DailySpend, never from SpendLog, so they cannot disagree with it: each one
is recomputed a whole day at a time from that day's DailySpend rows. Which days: DailySpend is
only ever replaced a day at a time (the rollup deletes and re-inserts a day, with new ids), so
the days of the rows above RollupMark.daily_spend_id are exactly the days that changed since the
last refresh. The billing rollup refreshes them right after it writes DailySpend; readers call
`spend_rollups_refresh` too (one indexed max(id) when nothing changed), so rows written by
other means — a bulk import, a restored backup, a test — are picked up on the next read.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Max, Sum

from billing.models import DailySpend, JobLock, RollupMark, SpendByModel, SpendByOwner, SpendByTeam

# Rollup model → the DailySpend columns it keeps (besides day).
COARSE: tuple[tuple[Any, tuple[str, ...]], ...] = (
    (SpendByModel, ("model",)),
    (SpendByTeam, ("team_id", "organization_id", "model")),
    (SpendByOwner, ("key_id", "user_id", "project_id", "team_id", "organization_id")),
)
MEASURES = ("prompt_tokens", "completion_tokens", "cost", "requests", "failed_requests", "cache_hits")
MARK = "coarse_rollups"
DAYS_PER_BATCH = 31


def spend_rollups_refresh() -> list[date]:
    """Recompute the coarse rollups for every day whose DailySpend changed since the last refresh.

    Returns the days recomputed (none in the common case, at the cost of two indexed reads).
    Safe to run concurrently: refreshes serialize on a JobLock row and re-read the mark under it.
    """
    latest = DailySpend.objects.aggregate(m=Max("pk"))["m"] or 0
    mark = RollupMark.objects.filter(name=MARK).values_list("daily_spend_id", flat=True).first()
    if mark is not None and mark >= latest:
        return []
    with transaction.atomic():
        JobLock.objects.get_or_create(name=MARK)
        JobLock.objects.select_for_update().get(name=MARK)
        mark_row, _ = RollupMark.objects.select_for_update().get_or_create(name=MARK)
        latest = DailySpend.objects.aggregate(m=Max("pk"))["m"] or 0
        if mark_row.daily_spend_id >= latest:
            return []
        days = sorted(DailySpend.objects.filter(pk__gt=mark_row.daily_spend_id, pk__lte=latest)
                      .order_by().values_list("day", flat=True).distinct())
        for start in range(0, len(days), DAYS_PER_BATCH):
            _recompute(days[start:start + DAYS_PER_BATCH])
        mark_row.daily_spend_id = latest
        mark_row.save(update_fields=["daily_spend_id"])
    return days


def _recompute(days: list[date]) -> None:
    """Replace these days' rows of every coarse rollup with sums of their DailySpend rows."""
    for model, columns in COARSE:
        groups = (DailySpend.objects.filter(day__in=days).order_by().values("day", *columns)
                  .annotate(**{f"sum_{m}": Sum(m) for m in MEASURES}))
        rows = [model(day=g["day"], **{c: g[c] for c in columns},
                      **{m: g[f"sum_{m}"] or (Decimal(0) if m == "cost" else 0) for m in MEASURES})
                for g in groups]
        model.objects.filter(day__in=days).delete()
        model.objects.bulk_create(rows, batch_size=2000)


def spend_rollups_mark() -> int:
    """Refresh the coarse rollups if DailySpend changed; the DailySpend id they now include.

    Anything computed from rollups can be cached under this number: it changes whenever they do.
    """
    spend_rollups_refresh()
    return RollupMark.objects.filter(name=MARK).values_list("daily_spend_id", flat=True).first() or 0
