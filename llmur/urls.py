"""URL map: admin, health probes, and the APIs each app contributes."""
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from accounts import device_views
from gateway import health_api
from llmur import ui_login, views
from llmur.api import api

# Unknown paths answer in the API's error shape (JSON), not with Django's HTML page; /admin/ keeps it.
handler404 = "llmur.api.not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/liveliness", views.liveliness, name="health-liveliness"),
    path("health/readiness", views.readiness, name="health-readiness"),
    # LiteLLM's /health: every deployment checked, master key only (gateway/health_api.py).
    path("health", health_api.health, name="health-deployments"),
    # Prometheus: master key or metrics.allowed_ips (llmur/views.py).
    path("metrics", views.metrics_view, name="metrics"),
    # Agent sign-in's verification page (RFC 8628), behind the admin login; its API is in accounts/device_api.py.
    path("sso/device", device_views.device_verify, name="device-verify"),
    # LiteLLM's UI sign-in form (`admin` + a master key), answered with an admin session (llmur/ui_login.py).
    path("login", ui_login.ui_login, name="ui-login"),
    # The one NinjaAPI (llmur/api.py): /v1/* and the management API; docs at /docs.
    path("", api.urls),
]

if settings.LLMUR_OIDC_ENABLED:
    # Single sign-on for the admin (mozilla-django-oidc): /oidc/authenticate/ and /oidc/callback/.
    # The callback is accounts.oidc's, so a refused sign-in lands on the login page (issue 16.15).
    urlpatterns.insert(0, path("oidc/", include("accounts.oidc")))
