"""The admin's page of agent sign-ins (RFC 8628 device flow): who approved which agent, its key, revoking it.

Imported by the accounts.admin package so the admin's autodiscovery registers it. Rows are written only by
the device-flow services; what a staff user sees follows policy.visible_agent_sign_ins.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from accounts import policy, services
from accounts.models import DeviceAuthorization
from accounts.policy import Actor, ReadOnly, StaffMayView
from llmur.core.errors import LlmurError


@admin.register(DeviceAuthorization)
class DeviceAuthorizationAdmin(StaffMayView, ReadOnly, admin.ModelAdmin):
    """Read-only list of agent sign-ins; the one action blocks the agents' keys where the policy lets the
    user (services.agent_key_revoke asks it, row by row)."""

    llmur_audited = True

    list_display = ["client_id", "status", "decided_by", "key_link", "created_at", "decided_at", "issued_at",
                    "key_last_used"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["client_id", "decided_by__username", "key__key_alias"]
    list_select_related = ["decided_by", "key"]
    readonly_fields = ["client_id", "scope", "status", "client_address", "user_agent", "interval", "created_at",
                       "expires_at", "last_polled_at", "decided_by", "decided_at", "key", "issued_at"]
    exclude = ["device_code_hash", "user_code_hash"]
    actions = ["revoke_selected"]
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return policy.visible_agent_sign_ins(Actor.of_request(request))

    @admin.display(description="key")
    def key_link(self, obj: DeviceAuthorization):
        if obj.key is None:
            return "-"
        return format_html('<a href="{}">{}</a>{}', reverse("admin:accounts_virtualkey_change", args=[obj.key.pk]),
                           obj.key.display, " (blocked)" if obj.key.blocked else "")

    @admin.display(description="key last used")
    def key_last_used(self, obj: DeviceAuthorization):
        return obj.key.last_used_at if obj.key else None

    @admin.action(description="Revoke the agents' keys (block them at once)")
    def revoke_selected(self, request, queryset):
        actor = Actor.of_request(request)
        done, refused = 0, []
        for authorization in queryset:
            try:
                services.agent_key_revoke(by=actor, authorization=authorization)
                done += 1
            except LlmurError as exc:
                refused.append(f"{authorization}: {exc.message}")
        self.message_user(request, f"Revoked {done} agent sign-in(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Left alone: " + " ".join(refused), messages.WARNING)
