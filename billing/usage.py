"""Spend and requests over time for one key, team, project or user: the usage pages' series.

Read from the rollups (billing/reports.daily_rows picks the smallest that has the column), one
row per day of the window, days without traffic as zeros.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Q, Sum

from billing.reports import daily_rows

ENTITY_COLUMNS = {"key": "key_id", "team": "team_id", "project": "project_id", "user": "user_id",
                  "organization": "organization_id"}


def entity_usage(*, kind: str, entity_id: int, start: dt.date, end: dt.date, scope: Q | None = None
                 ) -> dict[str, Any]:
    """Per day of [start, end]: cost, requests, failed requests and tokens of one entity; and the totals."""
    column = ENTITY_COLUMNS[kind]
    where = Q(**{column: entity_id}) & (scope if scope is not None else Q())
    per_day = {row["day"]: row for row in daily_rows(scope=where, start=start, end=end).order_by().values("day")
               .annotate(cost=Sum("cost"), requests=Sum("requests"), failed=Sum("failed_requests"),
                         tokens_in=Sum("prompt_tokens"), tokens_out=Sum("completion_tokens"))}
    days = []
    for i in range((end - start).days + 1):
        day = start + dt.timedelta(days=i)
        row = per_day.get(day, {})
        days.append({"day": day, "cost": row.get("cost") or Decimal(0), "requests": row.get("requests") or 0,
                     "failed": row.get("failed") or 0, "tokens_in": row.get("tokens_in") or 0,
                     "tokens_out": row.get("tokens_out") or 0})
    totals = {name: sum((d[name] for d in days), Decimal(0) if name == "cost" else 0)
              for name in ("cost", "requests", "failed", "tokens_in", "tokens_out")}
    return {"days": days, "totals": totals}


def entity_models(*, kind: str, entity_id: int, start: dt.date, end: dt.date, scope: Q | None = None
                  ) -> list[dict[str, Any]]:
    """The entity's spend per model over the window, biggest first."""
    column = ENTITY_COLUMNS[kind]
    where = Q(**{column: entity_id}) & (scope if scope is not None else Q())
    return list(daily_rows(scope=where, start=start, end=end, columns={"model"}).values("model")
                .annotate(cost=Sum("cost"), requests=Sum("requests"), failed=Sum("failed_requests"))
                .order_by("-cost", "model"))
