"""Which model or deployment is failing, since when, and what the upstream said: read from SpendLog.

Reads only a recent window (default 24 hours) of the ledger: the request counts per model and
deployment walk the started_at index, the failures the partial index on failed rows.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from billing.models import SpendLog

ERRORS_PER_ROW = 3


def model_health(*, hours: int = 24, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Per model and deployment over the window: requests, failures, first and last failure, latest errors.

    Failing rows come first (most failures first), then the healthy ones by traffic.
    """
    since = (now or timezone.now()) - dt.timedelta(hours=hours)
    window = SpendLog.objects.filter(started_at__gte=since)
    failed = Q(status=SpendLog.Status.FAILURE)
    rows = list(window.order_by().values("model", "deployment").annotate(
        requests=Count("id"), failures=Count("id", filter=failed), latency=Sum("latency_ms"),
        first_failure=Min("started_at", filter=failed), last_failure=Max("started_at", filter=failed),
        last_success=Max("started_at", filter=~failed)))
    for row in rows:
        row["mean_latency_ms"] = round((row.pop("latency") or 0) / row["requests"]) if row["requests"] else 0
        row["failure_rate"] = row["failures"] / row["requests"] if row["requests"] else 0.0
        row["errors"] = []
    failing = [r for r in rows if r["failures"]]
    for row in failing:
        row["errors"] = list(window.filter(failed, model=row["model"], deployment=row["deployment"])
                             .order_by("-started_at").values("started_at", "http_status", "error_message",
                                                             "request_id")[:ERRORS_PER_ROW])
    return sorted(failing, key=lambda r: (-r["failures"], r["model"])) + sorted(
        (r for r in rows if not r["failures"]), key=lambda r: (-r["requests"], r["model"]))


def deployment_failures(*, hours: int = 24) -> dict[str, dict[str, Any]]:
    """model_health keyed by deployment id, for the deployments list."""
    return {row["deployment"]: row for row in model_health(hours=hours) if row["deployment"]}
