"""The admin's permission methods, written once: ModelAdmin mixins that ask the policy, not Django's
model permissions, so a staff user can do in the admin exactly what their role allows on the API."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.policy.actor import Actor


def _staff(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_staff)


class StaffMayView:
    """Every active staff user opens the page (what each sees is narrowed by get_queryset)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _staff(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _staff(request)


class ProxyAdminMayView:
    """Only proxy admins open the page at all (the audit log, alerts, the request log, deployments)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return _staff(request) and Actor.of_request(request).is_proxy_admin

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


class ReadOnly:
    """Rows nobody adds, changes or deletes from the admin (ledgers, logs, alerts); inlines too."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ProxyAdminEdits:
    """Only a proxy admin adds, changes or deletes these rows (prices, alert settings, deployments)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return Actor.of_request(request).is_proxy_admin

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return Actor.of_request(request).is_proxy_admin

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return Actor.of_request(request).is_proxy_admin
