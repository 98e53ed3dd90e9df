"""URL map: admin, health probes, and the APIs each app contributes."""
from django.contrib import admin
from django.urls import path

from llmur import health

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/liveliness", health.liveliness, name="health-liveliness"),
    path("health/readiness", health.readiness, name="health-readiness"),
]
