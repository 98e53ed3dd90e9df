"""The audit log, read-only."""
from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from accounts.models import AuditEntry
from accounts.policy import ProxyAdminMayView, ReadOnly


@admin.register(AuditEntry)
class AuditEntryAdmin(ProxyAdminMayView, ReadOnly, admin.ModelAdmin):
    """Read-only: the audit log is written by services and admin saves, never edited."""

    llmur_audited = True

    list_display = ["created_at", "actor", "source", "action", "entity_type", "entity_repr"]
    list_filter = ["source", "action", "entity_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor", "entity_repr", "entity_id"]
    readonly_fields = ["created_at", "actor", "actor_user", "source", "action", "entity_type", "entity_id",
                       "entity_repr", "changes"]
    exclude = ["before", "after"]
    date_hierarchy = "created_at"

    @admin.display(description="changes")
    def changes(self, obj: AuditEntry) -> str:
        before, after = obj.before or {}, obj.after or {}
        names = [n for n in dict.fromkeys([*before, *after]) if before.get(n) != after.get(n)]
        if not names:
            return "-"
        return format_html('<table><tr><th>field</th><th>before</th><th>after</th></tr>{}</table>',
                           format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                            ((n, before.get(n, ""), after.get(n, "")) for n in names)))
