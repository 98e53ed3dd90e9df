"""The Django admin as the operator's console: dashboard on the index page, rate-limited login, helpers.

`LlmurAdminConfig` replaces django.contrib.admin in INSTALLED_APPS so that `admin.site` everywhere
(including other apps' admin.py) is a :class:`LlmurAdminSite`.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from llmur import login_throttle


class LlmurAdminConfig(AdminConfig):
    default_site = "llmur.admin_site.LlmurAdminSite"


# This module holds an AppConfig, so Django imports it before models are ready: what reads
# accounts (the policy, the models) is imported inside the functions below, not at the top.


def budget_bar(spend: Decimal | None, max_budget: Decimal | None, soft_budget: Decimal | None = None) -> str:
    """Spend against budget as a small bar: green, amber past the soft budget, red at 90 % and over.

    Amounts are written as refusals and alerts write them (billing.alerts.money): cents, or as many
    decimals as a smaller amount needs to be true ($0.0021 of $0.002, not of $0.00).
    """
    from billing.alerts import money

    spend = spend or Decimal(0)
    if not max_budget:
        return format_html('<span class="llmur-spend">{}</span> <span class="llmur-muted">no budget</span>',
                           money(spend))
    ratio = float(spend / max_budget) if max_budget else 0.0
    colour = "#c0392b" if ratio >= 0.9 else "#e69500" if soft_budget and spend >= soft_budget else "#2e8b57"
    width = max(0, min(100, round(ratio * 100)))
    return format_html(
        '<div class="llmur-budget" title="{} of {}" style="min-width:140px">'
        '<div style="background:#ddd;border-radius:3px;height:8px;width:140px">'
        '<div style="background:{};height:8px;border-radius:3px;width:{}%"></div></div>'
        '<small>{} of {} ({}%)</small></div>',
        money(spend), money(max_budget), colour, width, money(spend), money(max_budget), round(ratio * 100))


def _client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "?")


class AuditedAdminMixin:
    """Audit for a ModelAdmin that does not write its own entries (e.g. model prices, auth groups).

    The site mixes this into every admin class registered on it unless the class sets
    `llmur_audited = True` because it audits through the services itself.
    """

    llmur_audited = True

    def save_model(self, request, obj, form, change):
        from accounts.audit import audit_record, snapshot
        from accounts.policy import Actor

        before = snapshot(type(obj)._default_manager.filter(pk=obj.pk).first()) if change else None
        super().save_model(request, obj, form, change)
        audit_record(by=Actor.of_request(request), action="update" if change else "create", instance=obj,
                     before=before, after=snapshot(obj))

    def delete_model(self, request, obj):
        from accounts.audit import audit_record, snapshot
        from accounts.policy import Actor

        before, pk = snapshot(obj), obj.pk
        super().delete_model(request, obj)
        audit_record(by=Actor.of_request(request), action="delete", instance=obj, before=before, entity_id=str(pk))

    def delete_queryset(self, request, queryset):
        # One by one, so each deletion leaves its own entry.
        for obj in queryset:
            self.delete_model(request, obj)


class LlmurAdminSite(admin.AdminSite):
    site_header = "llmur"
    site_title = "llmur admin"
    index_title = "Dashboard"
    # llmur has no public site at "/" (the API lives there); hide Django's "View site" link.
    site_url = None
    index_template = "admin/llmur_index.html"
    login_template = "admin/llmur_login.html"

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not getattr(admin_class, "llmur_audited", False):
            admin_class = type(admin_class.__name__, (AuditedAdminMixin, admin_class),
                               {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__})
        return super().register(model_or_iterable, admin_class, **options)

    # ------------------------------------------------------------------ login, rate-limited

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """Django's login view behind the sign-in throttle (llmur/login_throttle.py).

        A refused attempt is answered before the password is checked, with no database query: 429
        past the limits, 503 when the cache is down under cache_failure_policy fail_closed.
        """
        extra_context = {**(extra_context or {}), "oidc_enabled": bool(getattr(settings, "LLMUR_OIDC_ENABLED", False))}
        if request.method != "POST":
            return super().login(request, extra_context)
        try:
            attempt = login_throttle.attempt_begin(username=request.POST.get("username") or "",
                                                   address=_client_address(request))
        except login_throttle.SignInUnavailable:
            return self._sign_in_refused(request, 503, "Sign-in is unavailable", "Sign-in is unavailable while "
                                         "the cache (Redis) is unreachable. Try again in a few minutes.")
        if attempt.refused:
            minutes = login_throttle.WINDOW_SECONDS // 60
            response = self._sign_in_refused(request, 429, "Too many attempts", "Too many failed sign-in "
                                             f"attempts. Wait {minutes} minutes and try again.")
            response["Retry-After"] = str(login_throttle.WINDOW_SECONDS)
            return response
        response = super().login(request, extra_context)
        if response.status_code in (301, 302):   # signed in; the form coming back means it failed
            login_throttle.attempt_succeeded(attempt)
        return response

    def _sign_in_refused(self, request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
        # A page of its own, not base_site.html: that one reads the user (a database query) and the app list.
        return TemplateResponse(request, "admin/llmur_login_refused.html",
                                {"site_header": self.site_header, "title": title, "message": message}, status=status)

    # ------------------------------------------------------------------ dashboard

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        return super().index(request, {**(extra_context or {}), **dashboard_context(request)})


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
    import hashlib

    from accounts.models import Team, VirtualKey
    from billing import reports
    from billing.rollups import spend_rollups_mark

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
    keys = VirtualKey.objects.in_bulk([row["key_id"] for row in top_keys])
    teams = Team.objects.in_bulk([row["team_id"] for row in top_teams])
    context = {
        "dash_totals": reports.totals(scope=scope, start=start, end=end),
        # Floats only for drawing; the totals shown as text stay Decimal.
        "dash_chart": {"labels": [d.isoformat() for d, _ in series], "values": [float(v) for _, v in series]},
        "dash_top_keys": [{"label": str(keys.get(r["key_id"]) or f"deleted key #{r['key_id']}"),
                           "id": r["key_id"] if r["key_id"] in keys else None, **r} for r in top_keys],
        "dash_top_teams": [{"label": str(teams.get(r["team_id"]) or f"deleted team #{r['team_id']}"),
                            "id": r["team_id"] if r["team_id"] in teams else None, **r} for r in top_teams],
        "dash_top_models": reports.top(by="model", scope=scope, start=start, end=end),
    }
    try:
        cache.set(cache_key, context, DASHBOARD_CACHE_SECONDS)
    except Exception:  # noqa: BLE001 - see above
        pass
    return context


def dashboard_context(request: HttpRequest) -> dict[str, Any]:
    from accounts import policy
    from accounts.policy import Actor

    actor = Actor.of_request(request)
    scope = policy.spend_scope(actor)
    end = _date_param(request, "end") or timezone.now().date()
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
        "dash_start": start.isoformat(),
        "dash_end": end.isoformat(),
        **_dashboard_spend(scope, scope_id, start, end),
        "dash_budgets": [(f"team {t.name}", budget_bar(t.spend, t.max_budget, t.soft_budget)) for t in budget_teams]
        + [(f"key {k}", budget_bar(k.spend, k.max_budget, k.soft_budget)) for k in budget_keys],
    }
