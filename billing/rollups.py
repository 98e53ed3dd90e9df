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
from typing import Any

from django.db import connection, transaction
from django.db.models import Max

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
    """Replace these days' rows of every coarse rollup with sums of their DailySpend rows.

    One INSERT ... SELECT ... GROUP BY per rollup, in plain SQL that PostgreSQL, MariaDB and SQLite
    all run: the sums never travel through Python (a 90-day catch-up on 1 M DailySpend rows takes
    seconds, not the minutes a row-by-row copy would).
    """
    q = connection.ops.quote_name
    marks = ", ".join(["%s"] * len(days))
    for model, columns in COARSE:
        model.objects.filter(day__in=days).delete()
        keep = ", ".join(q(c) for c in ("day", *columns))
        sums = ", ".join(f"COALESCE(SUM({q(m)}), 0)" for m in MEASURES)
        sql = (f"INSERT INTO {q(model._meta.db_table)} ({keep}, {', '.join(q(m) for m in MEASURES)}) "
               f"SELECT {keep}, {sums} FROM {q(DailySpend._meta.db_table)} WHERE {q('day')} IN ({marks}) "
               f"GROUP BY {keep}")
        with connection.cursor() as cursor:
            cursor.execute(sql, days)


def spend_rollups_mark() -> int:
    """Refresh the coarse rollups if DailySpend changed; the DailySpend id they now include.

    Anything computed from rollups can be cached under this number: it changes whenever they do.
    """
    spend_rollups_refresh()
    return RollupMark.objects.filter(name=MARK).values_list("daily_spend_id", flat=True).first() or 0
