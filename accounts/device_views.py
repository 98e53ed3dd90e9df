"""The verification page of agent sign-in (RFC 8628 3.3): a signed-in person enters the code, sees the agent, decides.

Behind the admin's sign-in (password or single sign-on): anyone not signed in is sent to the
admin login and back. Every code entered counts against the person's and the address's limit
(accounts.device_throttle) until it turns out right; the approve and deny forms carry Django's
CSRF token, and the page may not be framed (XFrameOptionsMiddleware).
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import device_throttle, policy, selectors, services
from accounts.models import DeviceAuthorization
from accounts.policy import Actor
from llmur.core.errors import LlmurError

TEMPLATE = "accounts/device_verify.html"


def _page(request: HttpRequest, step: str, status: int = 200, **context: Any) -> HttpResponse:
    return TemplateResponse(request, TEMPLATE, {**admin.site.each_context(request), "title": "Agent sign-in",
                                                "step": step, **context}, status=status)


def _limits() -> list[tuple[str, Any]]:
    flow = services.device_flow_settings()
    shown = [("expires after", flow.key_duration), ("models", ", ".join(flow.models) or "those of the scope"),
             ("budget", f"${flow.max_budget}" + (f" per {flow.budget_duration}" if flow.budget_duration else "")
              if flow.max_budget is not None else None),
             ("requests per minute", flow.rpm_limit), ("tokens per minute", flow.tpm_limit),
             ("parallel requests", flow.max_parallel_requests)]
    return [(label, value) for label, value in shown if value is not None]


def _lookup(request: HttpRequest, typed: str) -> DeviceAuthorization | HttpResponse:
    """The pending sign-in under the typed code, or the page that says why there is none."""
    flow = services.device_flow_settings()
    try:
        counters = device_throttle.user_code_attempt_begin(
            user_id=request.user.pk, address=request.META.get("REMOTE_ADDR", ""), limit=flow.max_user_code_attempts)
    except device_throttle.ThrottleUnavailable:
        return _page(request, "enter", 503, error="Agent sign-in is unavailable while the cache is unreachable. "
                                                   "Try again in a few minutes.")
    if counters is None:
        minutes = device_throttle.USER_CODE_WINDOW_SECONDS // 60
        response = _page(request, "enter", 429, error=f"Too many wrong codes. Wait {minutes} minutes and try again.")
        response["Retry-After"] = str(device_throttle.USER_CODE_WINDOW_SECONDS)
        return response
    authorization = selectors.device_authorization_pending(user_code=typed)
    if authorization is None:
        return _page(request, "enter", 400, user_code=typed[:20],
                     error="No sign-in is waiting under this code: check it against the agent's screen (it may "
                           "have expired, or been approved or denied already).")
    device_throttle.user_code_attempt_succeeded(counters)
    return authorization


@never_cache
@require_http_methods(["GET", "POST"])
def device_verify(request: HttpRequest) -> HttpResponse:
    if not services.device_flow_settings().enabled:
        raise Http404("agent sign-in is off")
    user = request.user
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
    typed = (request.POST.get("user_code") or request.GET.get("user_code") or "").strip()
    if not typed:
        return _page(request, "enter")
    found = _lookup(request, typed)
    if isinstance(found, HttpResponse):
        return found
    actor = Actor.for_user(user, "sso")
    decision = request.POST.get("decision") if request.method == "POST" else None
    context = {"authorization": found, "user_code": typed[:20], "requested": found.scope.split(),
               "scopes": policy.agent_key_scopes(actor), "limits": _limits()}
    try:
        if decision == "deny":
            services.device_deny(by=actor, authorization=found)
            return _page(request, "denied", authorization=found)
        if decision == "approve":
            scope = policy.agent_key_scope(actor, request.POST.get("scope"))
            key = services.device_approve(by=actor, authorization=found, owners=scope.owners)
            return _page(request, "approved", authorization=found, key=key, scope=scope)
    except LlmurError as exc:
        return _page(request, "confirm", exc.status, error=exc.message, **context)
    return _page(request, "confirm", **context)
