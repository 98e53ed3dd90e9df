"""URL map: admin, health probes, and the APIs each app contributes."""
from django.contrib import admin
from django.urls import path

from llmur import health
from llmur.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/liveliness", health.liveliness, name="health-liveliness"),
    path("health/readiness", health.readiness, name="health-readiness"),
    # The one NinjaAPI (llmur/api.py): /v1/* and the management API; docs at /docs.
    path("", api.urls),
]
