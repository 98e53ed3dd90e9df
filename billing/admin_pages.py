"""Pages that are not one table's list: model health (what fails, since when, why) and usage per entity.

Composition mounts them on the admin site (llmur/admin_site.py) as admin:billing_health and
admin:billing_usage; their data comes from billing.health, billing.refusals and billing.usage.
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from accounts import policy
from accounts.models import Project, Team, User, VirtualKey
from accounts.policy import Actor
from billing.health import model_health
from billing.periods import PRESETS, preset_days
from billing.refusals import refusal_summary
from billing.usage import entity_models, entity_usage
from llmur.core.catalog import deployment_labels
from llmur.core.money import count, money

WINDOWS = [(1, "Last hour"), (24, "Last 24 hours"), (24 * 7, "Last 7 days")]


def _spend_logs_url(**filters: Any) -> str:
    return reverse("admin:billing_spendlog_changelist") + "?" + urlencode(filters)


def health_view(request: HttpRequest, site) -> HttpResponse:
    """Per model and deployment: requests, failures, since when, and the upstream's latest error messages."""
    actor = Actor.of_request(request)
    if not actor.is_proxy_admin:  # deployments and their upstreams are proxy admins' (issue 16.8)
        raise PermissionDenied
    try:
        hours = int(request.GET.get("hours", 24))
    except ValueError:
        hours = 24
    hours = hours if hours in dict(WINDOWS) else 24
    labels = deployment_labels()
    rows = []
    for row in model_health(hours=hours):
        rows.append({**row, "deployment_label": labels.get(row["deployment"], row["deployment"] or "-"),
                     "requests_n": count(row["requests"]), "failures_n": count(row["failures"]),
                     "rate": f"{row['failure_rate']:.0%}",
                     "logs_url": _spend_logs_url(model=row["model"], status="failure", period="7d")})
    refusals = [{**r, "refused_n": count(r["refused"])} for r in refusal_summary(
        since=timezone.now() - dt.timedelta(hours=hours))[:20]]
    context = {**site.each_context(request), "title": "Model health", "rows": rows, "hours": hours,
               "windows": WINDOWS, "refusals": refusals,
               "refusals_url": reverse("admin:billing_refusalcount_changelist")}
    return TemplateResponse(request, "admin/billing/model_health.html", context)


ENTITIES = {"key": (VirtualKey, policy.visible_keys), "team": (Team, policy.visible_teams),
            "project": (Project, policy.visible_projects), "user": (User, policy.visible_users)}
LOG_FILTERS = {"key": "key__id__exact", "team": "team__id__exact", "project": "project__id__exact",
               "user": "user__id__exact"}


def usage_view(request: HttpRequest, site, kind: str, entity_id: int) -> HttpResponse:
    """Spend and requests per day of one key, team, project or user, with its models and links to its logs."""
    if kind not in ENTITIES:
        raise Http404
    model, visible = ENTITIES[kind]
    actor = Actor.of_request(request)
    entity = visible(actor).filter(pk=entity_id).first() if not actor.is_proxy_admin else \
        model.objects.filter(pk=entity_id).first()
    if entity is None:
        raise Http404
    preset = request.GET.get("period", "30d")
    start, end = preset_days(preset) or preset_days("30d")
    scope = policy.spend_scope(actor)
    usage = entity_usage(kind=kind, entity_id=entity.pk, start=start, end=end, scope=scope)
    models = entity_models(kind=kind, entity_id=entity.pk, start=start, end=end, scope=scope)
    days = [{**d, "cost_usd": money(d["cost"]), "requests_n": count(d["requests"]), "failed_n": count(d["failed"]),
             "logs_url": _spend_logs_url(**{LOG_FILTERS[kind]: entity.pk, "started_at__gte": d["day"].isoformat(),
                                            "started_at__lt": (d["day"] + dt.timedelta(days=1)).isoformat()})}
            for d in reversed(usage["days"])]
    totals = usage["totals"]
    context = {
        **site.each_context(request), "title": f"Usage of {kind} {entity}", "entity": entity, "kind": kind,
        "presets": [p for p in PRESETS if p[0] not in ("today", "yesterday")], "preset": preset,
        "start": start, "end": end, "days": days,
        "chart": {"labels": [d["day"].isoformat() for d in usage["days"]],
                  "values": [float(d["cost"]) for d in usage["days"]],
                  "requests": [d["requests"] for d in usage["days"]]},
        "totals": {"cost": money(totals["cost"]), "requests": count(totals["requests"]),
                   "failed": count(totals["failed"]), "tokens_in": count(totals["tokens_in"]),
                   "tokens_out": count(totals["tokens_out"])},
        "models": [{**m, "cost_usd": money(m["cost"]), "requests_n": count(m["requests"])} for m in models],
        "logs_url": _spend_logs_url(**{LOG_FILTERS[kind]: entity.pk, "period": preset}),
        "change_url": reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[entity.pk]),
    }
    return TemplateResponse(request, "admin/billing/usage.html", context)
