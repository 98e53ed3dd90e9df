"""The admin index as the operator's dashboard: totals, spend per day, top spenders, budgets, failures.

Every row links to the spend logs filtered to it. Numbers come from the rollups (billing/reports.py),
cached per viewer scope for a minute; budgets are read live.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts import policy
from accounts.display import budget_bar
from accounts.models import Project, Team, User, VirtualKey
from accounts.policy import Actor
from billing import reports
from billing.rollups import spend_rollups_mark
from llmur.core.money import count, money


def _date_param(request: HttpRequest, name: str) -> dt.date | None:
    value = request.GET.get(name)
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


DASHBOARD_CACHE_SECONDS = 60


def _dashboard_spend(scope, scope_id: str, start: dt.date, end: dt.date) -> dict[str, Any]:
    """The rollup-derived part of the dashboard, cached per scope and window for a minute.

    The cache key carries the rollups' mark (the last DailySpend id they include), so new spend
    shows at the next page view after the rollup, never a minute late; the minute only bounds
    how long an unchanged answer is kept.
    """
    mark = spend_rollups_mark()
    digest = hashlib.sha256(scope_id.encode()).hexdigest()[:24]
    cache_key = f"llmur:dashboard:{digest}:{start}:{end}:{mark}"
    try:
        cached = cache.get(cache_key)
    except Exception:  # noqa: BLE001 - an unreachable cache costs a recomputation, not the page
        cached = None
    if cached is not None:
        return cached
    series = reports.spend_over_time(scope=scope, start=start, end=end)
    top_keys = reports.top(by="key", scope=scope, start=start, end=end)
    top_teams = reports.top(by="team", scope=scope, start=start, end=end)
    top_users = reports.top(by="user", scope=scope, start=start, end=end)
    top_projects = reports.top(by="project", scope=scope, start=start, end=end)
    users = User.objects.in_bulk([row["user_id"] for row in top_users])
    projects = Project.objects.in_bulk([row["project_id"] for row in top_projects])
    keys = VirtualKey.objects.in_bulk([row["key_id"] for row in top_keys])
    teams = Team.objects.in_bulk([row["team_id"] for row in top_teams])
    totals = reports.totals(scope=scope, start=start, end=end)
    window = {"started_at__gte": start.isoformat(), "started_at__lt": (end + dt.timedelta(days=1)).isoformat()}

    def row(r: dict[str, Any], label: str, **filters: Any) -> dict[str, Any]:
        return {**r, "label": label, "cost_usd": money(r["cost"]), "requests_n": count(r["requests"]),
                "failed_n": count(r.get("failed") or 0), "logs_url": _logs_url(**window, **filters)}

    context = {
        "dash_totals": totals,
        "dash_totals_shown": {"cost": money(totals["cost"]), "requests": count(totals["requests"]),
                              "failed": count(totals["failed"]), "tokens": count(totals["tokens_in"]
                                                                                 + totals["tokens_out"]),
                              "tokens_in": count(totals["tokens_in"]), "tokens_out": count(totals["tokens_out"]),
                              "failed_url": _logs_url(**window, status="failure")},
        # Floats only for drawing; the totals shown as text stay Decimal.
        "dash_chart": {"labels": [d.isoformat() for d, _ in series], "values": [float(v) for _, v in series]},
        "dash_top_keys": [row(r, str(keys.get(r["key_id"]) or f"deleted key #{r['key_id']}"), key__id__exact=r["key_id"])
                          for r in top_keys],
        "dash_top_teams": [row(r, str(teams.get(r["team_id"]) or f"deleted team #{r['team_id']}"),
                               team__id__exact=r["team_id"]) for r in top_teams],
        "dash_top_users": [row(r, str(users.get(r["user_id"]) or f"deleted user #{r['user_id']}"),
                               user__id__exact=r["user_id"]) for r in top_users],
        "dash_top_projects": [row(r, str(projects.get(r["project_id"]) or f"deleted project #{r['project_id']}"),
                                  project__id__exact=r["project_id"]) for r in top_projects],
        "dash_top_models": [row(r, r["model"], model=r["model"])
                            for r in reports.top(by="model", scope=scope, start=start, end=end)],
    }
    try:
        cache.set(cache_key, context, DASHBOARD_CACHE_SECONDS)
    except Exception:  # noqa: BLE001 - see above
        pass
    return context


def _logs_url(**filters: Any) -> str:
    """The spend logs filtered to one dashboard row (and the dashboard's days)."""
    return reverse("admin:billing_spendlog_changelist") + "?" + urlencode(filters)


def _presets(today: dt.date) -> list[tuple[str, str, str]]:
    """(label, start, end) of the periods offered above the dashboard."""
    month = today.replace(day=1)
    last_month_end = month - dt.timedelta(days=1)
    return [("Today", today.isoformat(), today.isoformat()),
            ("Last 7 days", (today - dt.timedelta(days=6)).isoformat(), today.isoformat()),
            ("Last 30 days", (today - dt.timedelta(days=29)).isoformat(), today.isoformat()),
            ("This month", month.isoformat(), today.isoformat()),
            ("Last month", last_month_end.replace(day=1).isoformat(), last_month_end.isoformat())]


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    actor = Actor.of_request(request)
    scope = policy.spend_scope(actor)
    end = _date_param(request, "end") or timezone.localdate()
    start = _date_param(request, "start") or end - dt.timedelta(days=29)
    if start > end:
        start, end = end, start
    # The scope itself, not the user: a role change shows at once, and users who see the same
    # spend (e.g. every proxy admin) share one entry.
    scope_id = policy.spend_scope_id(actor)
    # Budgets are read live: they move with every booked request and cost two small queries.
    budget_teams = policy.visible_teams(actor).filter(max_budget__isnull=False).order_by("-spend")[:8]
    budget_keys = policy.visible_keys(actor).filter(max_budget__isnull=False).order_by("-spend")[:8]
    return {
        "dash_presets": _presets(timezone.localdate()),
        "dash_may_see_health": actor.is_proxy_admin,
        "dash_start": start.isoformat(),
        "dash_end": end.isoformat(),
        **_dashboard_spend(scope, scope_id, start, end),
        "dash_budgets": [(f"team {t.name}", budget_bar(t.spend, t.max_budget, t.soft_budget),
                          reverse("admin:billing_usage", args=["team", t.pk])) for t in budget_teams]
        + [(f"key {k}", budget_bar(k.spend, k.max_budget, k.soft_budget),
            reverse("admin:billing_usage", args=["key", k.pk])) for k in budget_keys],
    }
