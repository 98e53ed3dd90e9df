"""The Django admin as the operator's console: dashboard, menu by task, model health and usage pages, login.

`llmur.apps.LlmurAdminConfig` replaces django.contrib.admin in INSTALLED_APPS so that `admin.site`
everywhere (including the apps' admin modules, which register there and never import this
module) is a :class:`LlmurAdminSite`. This module is composition: it may read every app.
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts.audit import audit_record, snapshot
from accounts.policy import Actor
from billing import admin_pages as pages
from llmur import login_throttle
from llmur.admin_dashboard import dashboard_context

# The menu: (heading, [app_label.model_name, ...]) in the order operators reach for them.
MENU = [
    ("Keys and teams", ["accounts.virtualkey", "accounts.team", "accounts.project", "accounts.user",
                        "accounts.organization", "accounts.deviceauthorization"]),
    ("Spend", ["billing.spendlog", "billing.dailyspend", "billing.health", "billing.refusalcount",
               "billing.budgetalert", "billing.teamalertsetting"]),
    ("Models", ["gateway.modeldeployment", "billing.modelprice", "gateway.requestlog"]),
    ("Records", ["accounts.auditentry", "accounts.teammembership", "accounts.organizationmembership",
                 "accounts.projectcredential"]),
]
LABELS = {"accounts.virtualkey": "Keys", "billing.dailyspend": "Daily spend", "billing.refusalcount": "Refusals",
          "accounts.auditentry": "Audit log", "gateway.requestlog": "Request logs (prompts)",
          "billing.teamalertsetting": "Alert settings per team",
          "accounts.deviceauthorization": "Agent sign-ins"}


def _client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "?")


class AuditedAdminMixin:
    """Audit for a ModelAdmin that does not write its own entries (e.g. model prices, auth groups).

    The site mixes this into every admin class registered on it unless the class sets
    `llmur_audited = True` because it audits through the services itself.
    """

    llmur_audited = True

    def save_model(self, request, obj, form, change):
        before = snapshot(type(obj)._default_manager.filter(pk=obj.pk).first()) if change else None
        super().save_model(request, obj, form, change)
        audit_record(by=Actor.of_request(request), action="update" if change else "create", instance=obj,
                     before=before, after=snapshot(obj))

    def delete_model(self, request, obj):
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
    # The side menu would take 300 px from every list; the menu is the dashboard's, a click on "llmur" away.
    enable_nav_sidebar = False
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

    # ------------------------------------------------------------------ every page

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        # The one time zone dates are shown in (config time_zone), named on every page.
        return {**super().each_context(request), "llmur_time_zone": settings.TIME_ZONE}

    def get_urls(self):
        return [path("health/", self.admin_view(lambda request: pages.health_view(request, self)),
                     name="billing_health"),
                path("usage/<str:kind>/<int:entity_id>/",
                     self.admin_view(lambda request, kind, entity_id: pages.usage_view(request, self, kind, entity_id)),
                     name="billing_usage"),
                *super().get_urls()]

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict[str, Any]]:
        """The menu by what operators do most: keys and teams, then spend, then models, then records.

        Names in plain words ("Keys", not "Virtual keys"); a page the user may not open is left out
        (Django's own app dict decides that); Groups is not registered at all.
        """
        if app_label is not None:
            return super().get_app_list(request, app_label)
        entries = {}
        for app in self._build_app_dict(request).values():
            for model in app["models"]:
                entries[f"{app['app_label']}.{model['object_name'].lower()}"] = model
        if request.user.is_active and request.user.is_staff and Actor.of_request(request).is_proxy_admin:
            entries["billing.health"] = {"name": "Model health", "object_name": "ModelHealth",
                                         "admin_url": reverse("admin:billing_health"), "view_only": True,
                                         "perms": {"view": True}}
        menu = []
        for index, (title, names) in enumerate(MENU):
            models = []
            for name in names:
                if name in entries:
                    entry = dict(entries.pop(name))
                    entry["name"] = LABELS.get(name, entry["name"])
                    models.append(entry)
            if models:
                menu.append({"name": title, "app_label": f"llmur-{index}", "app_url": models[0]["admin_url"],
                             "has_module_perms": True, "models": models})
        if entries:  # anything registered later that the menu does not name yet
            menu.append({"name": "Other", "app_label": "llmur-other", "app_url": "", "has_module_perms": True,
                         "models": sorted(entries.values(), key=lambda m: m["name"])})
        return menu


