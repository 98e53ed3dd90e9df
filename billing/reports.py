"""Spend reports for the management API (/spend/logs, /global/spend/report) and the admin dashboard.

Totals over days read rollups, never SpendLog: the smallest of SpendByModel (day × model),
SpendByTeam (day × team × organization × model), SpendByOwner (day × key × user × project × team ×
organization) and DailySpend (all of those columns) that has every column the question groups,
filters or scopes by. /spend/logs is the one report that lists individual requests.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Team
from billing.models import DailySpend, SpendByModel, SpendByOwner, SpendByTeam, SpendLog
from billing.rollups import spend_rollups_refresh
from llmur.core.errors import LlmurError

GROUPS = {
    "day": "day",
    "key": "key_id",
    "api_key": "key_id",
    "team": "team_id",
    "user": "user_id",
    "project": "project_id",
    "organization": "organization_id",
    "model": "model",
}


def parse_date(value: Any, *, param: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise LlmurError(400, "invalid_request_error", f"{param} must be a date as YYYY-MM-DD; got {value!r}.",
                         param=param, code="400") from None


def _window(start: dt.date | None, end: dt.date | None, *, default_days: int = 30) -> tuple[dt.date, dt.date]:
    end = end or timezone.now().date()
    start = start or end - dt.timedelta(days=default_days - 1)
    if start > end:
        raise LlmurError(400, "invalid_request_error", "start_date must not be after end_date.",
                         param="start_date", code="400")
    return start, end


# Smallest first; each with the columns (besides day) it can group, filter and scope by.
ROLLUPS: tuple[tuple[Any, frozenset[str]], ...] = (
    (SpendByModel, frozenset({"model"})),
    (SpendByTeam, frozenset({"team_id", "organization_id", "model"})),
    (SpendByOwner, frozenset({"key_id", "user_id", "project_id", "team_id", "organization_id"})),
    (DailySpend, frozenset({"key_id", "user_id", "project_id", "team_id", "organization_id", "model"})),
)


def _columns_of(q: Q) -> set[str]:
    """The model columns a Q object filters on (team_id__in → team_id)."""
    names: set[str] = set()
    for child in q.children:
        if isinstance(child, Q):
            names |= _columns_of(child)
        else:
            names.add(child[0].split("__")[0])
    return names


def _rollup_for(needed: set[str]) -> Any:
    needed = {"key_id" if c == "key" else c for c in needed} - {"day"}
    for model, columns in ROLLUPS:
        if needed <= columns:
            return model
    return DailySpend


def daily_rows(*, scope: Q | None = None, start: dt.date | None = None, end: dt.date | None = None,
               columns: set[str] | frozenset[str] = frozenset()) -> QuerySet:
    """Rollup rows of the window (and scope) from the smallest rollup that has `columns`."""
    start, end = _window(start, end)
    needed = set(columns) | (_columns_of(scope) if scope is not None else set())
    model = _rollup_for(needed)
    if model is not DailySpend:
        spend_rollups_refresh()
    qs = model.objects.filter(day__gte=start, day__lte=end)
    return qs.filter(scope) if scope is not None else qs


def spend_report(*, group_by: list[str], scope: Q | None = None, start: dt.date | None = None,
                 end: dt.date | None = None, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Cost, tokens and requests grouped by any of day, key, team, user, project, organization, model."""
    unknown = [g for g in group_by if g not in GROUPS]
    if unknown or not group_by:
        got = ", ".join(unknown) or "nothing"
        raise LlmurError(400, "invalid_request_error",
                         f"group_by must be one or more of {', '.join(sorted(GROUPS))}; got {got}.",
                         param="group_by", code="400")
    columns = list(dict.fromkeys(GROUPS[g] for g in group_by))
    qs = daily_rows(scope=scope, start=start, end=end,
                    columns=set(columns) | {name.split("__")[0] for name in (filters or {})})
    if filters:
        qs = qs.filter(**filters)
    rows = (qs.values(*columns)
            .annotate(spend=Sum("cost"), prompt_tokens=Sum("prompt_tokens"),
                      completion_tokens=Sum("completion_tokens"), api_requests=Sum("requests"),
                      failed_requests=Sum("failed_requests"))
            .order_by(*columns))
    out = []
    for row in rows:
        item = {("key_id" if k == "key_id" else k): v for k, v in row.items()}
        if "day" in item:
            item["day"] = item["day"].isoformat()
        item["spend"] = item["spend"] or Decimal(0)
        item["total_tokens"] = (item["prompt_tokens"] or 0) + (item["completion_tokens"] or 0)
        out.append(item)
    return out


def spend_over_time(*, scope: Q | None = None, start: dt.date | None = None, end: dt.date | None = None
                    ) -> list[tuple[dt.date, Decimal]]:
    """Every day of the window with its total cost (days without traffic as zero), for the chart."""
    start, end = _window(start, end)
    totals = {row["day"]: row["cost"] or Decimal(0) for row in
              daily_rows(scope=scope, start=start, end=end).order_by().values("day").annotate(cost=Sum("cost"))}
    days = (end - start).days + 1
    return [(start + dt.timedelta(days=i), totals.get(start + dt.timedelta(days=i), Decimal(0)))
            for i in range(days)]


def top(*, by: str, scope: Q | None = None, start: dt.date | None = None, end: dt.date | None = None,
        limit: int = 5) -> list[dict[str, Any]]:
    """The biggest spenders by key, team or model over the window."""
    column = {"key": "key_id", "team": "team_id", "model": "model", "user": "user_id", "project": "project_id"}[by]
    qs = daily_rows(scope=scope, start=start, end=end, columns={column})
    if column != "model":
        qs = qs.filter(**{f"{column}__isnull": False})
    return list(qs.values(column).annotate(cost=Sum("cost"), requests=Sum("requests"), failed=Sum("failed_requests"))
                .order_by("-cost", column)[:limit])


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)


def log_cursor(row: SpendLog) -> str:
    """The position after `row` in /spend/logs order, for the next page."""
    # "Z", not "+00:00": a "+" pasted unencoded into a query string would arrive as a space.
    return f"{row.started_at.astimezone(dt.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}_{row.pk}"


def _parse_cursor(cursor: str) -> tuple[dt.datetime, int]:
    when, _, pk = cursor.rpartition("_")
    try:
        parsed = dt.datetime.fromisoformat(when)
        if parsed.tzinfo is None:
            raise ValueError
        return parsed, int(pk)
    except ValueError:
        raise LlmurError(400, "invalid_request_error",
                         "cursor must be the x-next-cursor header of a previous /spend/logs page.",
                         param="cursor", code="400") from None


def spend_logs(*, scope: Q | None = None, key_id: int | None = None, user_id: int | None = None,
               team_id: int | None = None, model: str | None = None, request_id: str | None = None,
               start: dt.date | None = None, end: dt.date | None = None, cursor: str | None = None,
               limit: int = 100) -> QuerySet[SpendLog]:
    """Individual requests, newest first, filtered as /spend/logs allows; `cursor` continues a page.

    Dates are UTC days turned into a started_at range (midnight to midnight), not a __date lookup,
    so PostgreSQL walks the (key|user|team|model, -started_at) index and stops after `limit` rows.
    """
    qs = SpendLog.objects.all()
    if scope is not None:
        qs = qs.filter(scope)
    if key_id is not None:
        qs = qs.filter(key_id=key_id)
    if user_id is not None:
        qs = qs.filter(user_id=user_id)
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if model:
        qs = qs.filter(model=model)
    if request_id:
        # llmur's own id, the client's x-request-id or the upstream answer's id (LiteLLM users look
        # spend up by the completion id): each is indexed.
        qs = qs.filter(Q(request_id=request_id) | Q(client_request_id=request_id) | Q(response_id=request_id))
    if start:
        qs = qs.filter(started_at__gte=_midnight(start))
    if end:
        qs = qs.filter(started_at__lt=_midnight(end + dt.timedelta(days=1)))
    if cursor:
        when, pk = _parse_cursor(cursor)
        qs = qs.filter(Q(started_at__lt=when) | Q(started_at=when, pk__lt=pk))
    return qs.order_by("-started_at", "-id")[:limit]


def totals(*, scope: Q | None = None, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, Any]:
    row = daily_rows(scope=scope, start=start, end=end).aggregate(
        cost=Sum("cost"), requests=Sum("requests"), failed=Sum("failed_requests"),
        tokens_in=Sum("prompt_tokens"), tokens_out=Sum("completion_tokens"))
    row |= daily_rows(scope=scope, start=start, end=end, columns={"key_id"}).aggregate(
        keys=Count("key_id", distinct=True))
    return {k: (v or 0) for k, v in row.items()}


def deployment_health(*, hours: int = 1) -> dict[str, dict[str, Any]]:
    """Per deployment over the last hours: requests, failures and mean latency, as the gateway saw them."""
    since = timezone.now() - dt.timedelta(hours=hours)
    rows = (SpendLog.objects.filter(started_at__gte=since).values("deployment")
            .annotate(requests=Count("id"), failures=Count("id", filter=Q(status=SpendLog.Status.FAILURE)),
                      latency=Sum("latency_ms")))
    return {r["deployment"]: {"requests": r["requests"], "failures": r["failures"],
                              "mean_latency_ms": round((r["latency"] or 0) / r["requests"]) if r["requests"] else 0}
            for r in rows}


def team_spend_by_day(*, scope: Q | None = None, start: dt.date | None = None, end: dt.date | None = None
                      ) -> list[dict[str, Any]]:
    """/global/spend/report?group_by=team in LiteLLM's shape: one row per day, each with its teams' totals
    and a per-model breakdown in `metadata`. A team is named by its alias (else its team_id); spend
    with no team is "Unassigned"."""
    rows = spend_report(group_by=["day", "team", "model"], scope=scope, start=start, end=end)
    teams = Team.objects.in_bulk({r["team_id"] for r in rows if r["team_id"] is not None})
    days: dict[str, dict[Any, dict[str, Any]]] = {}
    for row in rows:
        team = teams.get(row["team_id"]) if row["team_id"] is not None else None
        public_id = team.public_id if team is not None else None
        name = (team.name or team.public_id) if team is not None else "Unassigned"
        entry = days.setdefault(row["day"], {}).setdefault(
            row["team_id"], {"team_name": name, "team_id": public_id, "total_spend": Decimal(0), "metadata": []})
        entry["total_spend"] += row["spend"]
        entry["metadata"].append({"model": row["model"], "spend": float(row["spend"]),
                                  "total_tokens": row["total_tokens"], "api_requests": row["api_requests"]})
    return [{"group_by_day": day,
             "teams": [{**t, "total_spend": float(t["total_spend"])} for t in by_team.values()]}
            for day, by_team in days.items()]


def team_spend_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """spend_report rows grouped by day and team, in LiteLLM's /global/spend/teams shape (teams by alias)."""
    names = {team.pk: team.name or team.public_id
             for team in Team.objects.filter(pk__in={r["team_id"] for r in rows if r["team_id"]})}
    days: dict[str, dict[str, Any]] = {}
    totals: dict[str, Decimal] = {}
    for row in rows:
        team = names.get(row["team_id"], str(row["team_id"])) if row["team_id"] else "no team"
        day = days.setdefault(row["day"], {"date": row["day"]})
        day[team] = float(Decimal(str(day.get(team, 0))) + row["spend"])
        totals[team] = totals.get(team, Decimal(0)) + row["spend"]
    return {"daily_spend": list(days.values()), "teams": sorted(totals),
            "total_spend_per_team": [{"team_id": team, "total_spend": float(spend)}
                                     for team, spend in sorted(totals.items(), key=lambda t: -t[1])]}
