"""Refused requests, counted per hour, key and reason (billing/refusals.py): why a client was refused."""
from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.utils.html import format_html, format_html_join

from accounts.policy import ProxyAdminMayView, ReadOnly
from billing.admin.filters import EstimatedCountPaginator
from billing.models import RefusalCount
from llmur.core.money import count


@admin.register(RefusalCount)
class RefusalCountAdmin(ProxyAdminMayView, ReadOnly, admin.ModelAdmin):
    """One row per hour, key and reason; the latest few refusals of each as samples on its page."""

    list_display = ["hour_shown", "key_name", "reason", "refused", "last_message"]
    list_filter = ["reason", "status", ("hour", admin.DateFieldListFilter)]
    search_fields = ["=key_display", "key__key_alias"]
    list_select_related = ["key"]
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    fields = ["hour_shown", "key_name", "reason", "status", "refused", "last_seen", "sample_list"]
    readonly_fields = fields

    @admin.display(description="hour", ordering="hour")
    def hour_shown(self, obj: RefusalCount) -> str:
        return display_for_value(obj.hour, "-")

    @admin.display(description="key")
    def key_name(self, obj: RefusalCount) -> str:
        if obj.bucket == RefusalCount.UNKNOWN:
            return format_html('<span class="llmur-muted">{}</span>', "unknown or no key")
        return (obj.key.key_alias or obj.key.display) if obj.key is not None else obj.key_display or obj.bucket

    @admin.display(description="refused", ordering="count")
    def refused(self, obj: RefusalCount) -> str:
        return count(obj.count)

    @admin.display(description="last seen", ordering="last_at")
    def last_seen(self, obj: RefusalCount) -> str:
        return display_for_value(obj.last_at, "-")

    @admin.display(description="latest message")
    def last_message(self, obj: RefusalCount) -> str:
        sample = (obj.samples or [{}])[0]
        return format_html('<span class="llmur-error">{}</span>', (sample.get("message") or "")[:160])

    @admin.display(description="latest refusals")
    def sample_list(self, obj: RefusalCount) -> str:
        rows = ((s.get("at", "")[:19].replace("T", " "), s.get("status", ""), s.get("request_id", ""),
                 s.get("message", "")) for s in obj.samples or [])
        return format_html('<table class="llmur-samples"><tr><th>when (UTC)</th><th>status</th><th>request</th>'
                           '<th>message</th></tr>{}</table>',
                           format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))
