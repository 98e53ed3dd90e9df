"""POST /login: LiteLLM's admin UI sign-in form (user name `admin`, a master key as the password) for the admin.

LiteLLM's proxy signs the browser in to its UI with this form; scripts written for it post the same
form before they manage keys. llmur answers it by signing the browser in to its admin (/admin/) as
the `admin` account, a proxy admin created on the first such sign-in (accounts.services.ui_admin_account,
which refuses when `admin` is someone else's account). Attempts go through the admin's sign-in
throttle (llmur/login_throttle.py) before the key is checked. A wrong user name or key is a 401 in the
API's error shape, which never repeats what was sent.
"""
from __future__ import annotations

import hmac

from django.contrib.auth import login as django_login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts import policy, services
from accounts.keys import key_digest
from accounts.master_keys import master_key_digests
from accounts.policy import Actor
from llmur import login_throttle
from llmur.core.errors import LlmurError


def _error(error: LlmurError) -> JsonResponse:
    response = JsonResponse(error.openai_body(), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def _is_master_key(password: str) -> bool:
    digest = key_digest(password)
    return any(hmac.compare_digest(digest, known) for known in master_key_digests())


# No CSRF token: the form carries the master key itself, so a forged post from another site could only
# sign a browser in with a key its author already holds.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def ui_login(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return HttpResponseRedirect(reverse("admin:login"))
    username = (request.POST.get("username") or "").strip()
    password = request.POST.get("password") or ""
    try:
        attempt = login_throttle.attempt_begin(username=username, address=request.META.get("REMOTE_ADDR", "?"))
    except login_throttle.SignInUnavailable:
        return _error(LlmurError(503, "service_unavailable", "Sign-in is unavailable while the cache (Redis) is "
                                 "unreachable. Try again in a few minutes.", code="503"))
    if attempt.refused:
        return _error(LlmurError(429, "rate_limit_error", "Too many failed sign-in attempts. Wait "
                                 f"{login_throttle.WINDOW_SECONDS // 60} minutes and try again.", code="429",
                                 headers={"Retry-After": str(login_throttle.WINDOW_SECONDS)}))
    if username != policy.UI_ADMIN_USERNAME or not _is_master_key(password):
        return _error(LlmurError(401, "auth_error", f"Invalid credentials: sign in as {policy.UI_ADMIN_USERNAME!r} "
                                 "with a master key as the password, or with your own account at /admin/.",
                                 code="401"))
    try:
        with transaction.atomic():
            user = services.ui_admin_account(by=Actor.master("ui-login"))
    except LlmurError as error:
        return _error(error)
    login_throttle.attempt_succeeded(attempt)
    django_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return HttpResponseRedirect(reverse("admin:index"))
