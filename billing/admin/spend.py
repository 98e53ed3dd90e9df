"""The ledger's pages: spend logs (one row per request) and daily spend (rollups), with totals and CSV export.

Rows are read-only here, written only by the spend queue; what a staff user sees follows their
role (accounts.policy.spend_scope). The lists keep what fits a laptop screen; every other column
is on the row's own page.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts import policy
from accounts.policy import Actor, ReadOnly, StaffMayView
from billing.admin.filters import (
    OWNER_FILTERS,
    DayPeriodFilter,
    EstimatedCountPaginator,
    ModelNameFilter,
    PeriodFilter,
    ProviderFilter,
)
from billing.models import DailySpend, SpendLog
from llmur.core.money import count, money

TOTALS_TEMPLATE = "admin/billing/change_list_totals.html"


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(filename: str, header: list[str], rows: Iterator[list[Any]]) -> StreamingHttpResponse:
    """A CSV streamed row by row: an export of a large filtered set never sits whole in memory."""
    writer = csv.writer(_Echo())
    def generate() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    response = StreamingHttpResponse(generate(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ScopedReadOnlyAdmin(StaffMayView, ReadOnly, admin.ModelAdmin):
    """Visible to staff within their role's scope; nobody adds, edits or deletes ledger rows.

    Lists show totals of the filtered rows and link a CSV export of the same rows.
    """

    change_list_template = TOTALS_TEMPLATE
    csv_name = ""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        scope = policy.spend_scope(Actor.of_request(request))
        return qs if scope is None else qs.filter(scope)

    def get_urls(self):
        info = self.model._meta.app_label, self.model._meta.model_name
        return [path("export.csv", self.admin_site.admin_view(self.export_view), name=f"{info[0]}_{info[1]}_export"),
                *super().get_urls()]

    def totals_of(self, request: HttpRequest, qs: QuerySet) -> dict[str, Any] | None:
        raise NotImplementedError

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        if cl is not None:
            info = self.model._meta.app_label, self.model._meta.model_name
            response.context_data["llmur_totals"] = self.totals_of(request, cl.queryset)
            response.context_data["llmur_export_url"] = (reverse(f"admin:{info[0]}_{info[1]}_export")
                                                         + ("?" + request.GET.urlencode() if request.GET else ""))
        return response

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The rows the list shows with the same filters, every page of them, as CSV."""
        cl = self.get_changelist_instance(request)
        qs = cl.get_queryset(request)
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
        return csv_response(f"{self.csv_name}-{stamp}.csv", self.csv_header, self.csv_rows(qs))


@admin.register(SpendLog)
class SpendLogAdmin(ScopedReadOnlyAdmin):
    """The ledger's list stays fast at 10 M rows: every query it runs is an index walk with a LIMIT.

    No date_hierarchy (its year links are a DISTINCT date_trunc over every row; the period presets
    and the date filter are started_at ranges), filter choices from small tables, an estimated
    count, newest first on the started_at index, and exact-match search (a substring search would
    scan the whole table). Totals are summed only once a filter narrows the rows.
    """

    list_display = ["when", "key_name", "model", "tokens", "cost_usd", "outcome"]
    list_filter = [PeriodFilter, ("started_at", admin.DateFieldListFilter), *OWNER_FILTERS, ModelNameFilter, "status",
                   ProviderFilter, "stream", "cache_hit"]
    search_fields = ["=request_id", "=client_request_id", "=response_id", "=key_display", "=end_user"]
    list_select_related = ["key", "team", "project"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ["-started_at", "-id"]
    csv_name = "spend-logs"
    fieldsets = [
        (None, {"fields": ["request_id", "client_request_id", "response_id", "when", "outcome", "error_message"]}),
        ("Who", {"fields": ["key_name", "user", "team", "project", "organization", "end_user"]}),
        ("Model", {"fields": ["model", "deployment", "provider", "call_type", "stream", "cache_hit"]}),
        ("Usage and cost", {"fields": ["prompt_tokens_n", "completion_tokens_n", "cost_usd", "latency", "first_token"]}),
    ]
    readonly_fields = ["when", "outcome", "key_name", "prompt_tokens_n", "completion_tokens_n", "cost_usd", "latency",
                       "first_token", "tokens"]

    @admin.display(description="when", ordering="started_at")
    def when(self, obj: SpendLog) -> str:
        return format_html('{}<br><span class="llmur-muted llmur-request-id">{}</span>',
                           display_for_value(obj.started_at, "-"), obj.request_id)

    @admin.display(description="key")
    def key_name(self, obj: SpendLog) -> str:
        key = obj.key
        name = (key.key_alias or key.display) if key is not None else obj.key_display or "master key"
        return format_html('{}<br><span class="llmur-muted">{}</span>', name, obj.team) if obj.team_id else name

    @admin.display(description="tokens in / out")
    def tokens(self, obj: SpendLog) -> str:
        return f"{count(obj.prompt_tokens)} / {count(obj.completion_tokens)}"

    @admin.display(description="tokens in")
    def prompt_tokens_n(self, obj: SpendLog) -> str:
        return count(obj.prompt_tokens)

    @admin.display(description="tokens out")
    def completion_tokens_n(self, obj: SpendLog) -> str:
        return count(obj.completion_tokens)

    @admin.display(description="cost", ordering="cost")
    def cost_usd(self, obj: SpendLog) -> str:
        return money(obj.cost)

    @admin.display(description="latency")
    def latency(self, obj: SpendLog) -> str:
        return f"{count(obj.latency_ms)} ms"

    @admin.display(description="time to first token")
    def first_token(self, obj: SpendLog) -> str:
        return f"{count(obj.ttft_ms)} ms" if obj.ttft_ms is not None else "-"

    @admin.display(description="outcome", ordering="status")
    def outcome(self, obj: SpendLog) -> str:
        if obj.status == SpendLog.Status.SUCCESS:
            return format_html('<span class="llmur-status llmur-status-ok">OK</span>')
        text = (obj.error_message or "")[:140]
        return format_html('<span class="llmur-status llmur-status-bad">Failed (HTTP {})</span>'
                           '<br><span class="llmur-error" title="{}">{}</span>', obj.http_status,
                           obj.error_message, text)

    def totals_of(self, request, qs):
        # Unfiltered, a sum would read the whole ledger: the rollups' pages answer that question.
        narrowed = any(name not in ("o", "p", "q") for name in request.GET)
        if not narrowed:
            return None
        row = qs.order_by().aggregate(cost=Sum("cost"), tokens_in=Sum("prompt_tokens"),
                                      tokens_out=Sum("completion_tokens"))
        return {"cost": money(row["cost"]), "tokens_in": count(row["tokens_in"]),
                "tokens_out": count(row["tokens_out"]), "requests": None}

    csv_header = ["started_at", "request_id", "key", "team", "project", "user", "model", "deployment", "provider",
                  "prompt_tokens", "completion_tokens", "cost_usd", "status", "http_status", "latency_ms",
                  "error_message"]

    def csv_rows(self, qs: QuerySet) -> Iterator[list[Any]]:
        for log in qs.select_related("key", "team", "project", "user").iterator(chunk_size=2000):
            key = (log.key.key_alias or log.key.display) if log.key is not None else log.key_display
            yield [log.started_at.isoformat(), log.request_id, key, log.team or "", log.project or "",
                   log.user or "", log.model, log.deployment, log.provider, log.prompt_tokens, log.completion_tokens,
                   log.cost, log.status, log.http_status, log.latency_ms, log.error_message]


@admin.register(DailySpend)
class DailySpendAdmin(ScopedReadOnlyAdmin):
    list_display = ["day", "owner", "model", "requests_n", "tokens", "cost_usd"]
    list_filter = [DayPeriodFilter, ("day", admin.DateFieldListFilter), *OWNER_FILTERS, ModelNameFilter]
    list_select_related = ["key", "user", "project", "team", "organization"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ["-day", "-id"]
    csv_name = "daily-spend"
    fields = ["day", "owner", "model", "requests_n", "failed_n", "tokens", "cost_usd"]
    readonly_fields = fields

    @admin.display(description="who")
    def owner(self, obj: DailySpend) -> str:
        parts = [f"{label} {value}" for label, value in (("key", obj.key), ("team", obj.team), ("project", obj.project),
                                                         ("user", obj.user)) if value is not None]
        return ", ".join(parts) or "-"

    @admin.display(description="requests", ordering="requests")
    def requests_n(self, obj: DailySpend) -> str:
        failed = f" ({count(obj.failed_requests)} failed)" if obj.failed_requests else ""
        return count(obj.requests) + failed

    @admin.display(description="failed")
    def failed_n(self, obj: DailySpend) -> str:
        return count(obj.failed_requests)

    @admin.display(description="tokens in / out")
    def tokens(self, obj: DailySpend) -> str:
        return f"{count(obj.prompt_tokens)} / {count(obj.completion_tokens)}"

    @admin.display(description="cost", ordering="cost")
    def cost_usd(self, obj: DailySpend) -> str:
        return money(obj.cost)

    def totals_of(self, request, qs):
        row = qs.order_by().aggregate(cost=Sum("cost"), requests=Sum("requests"), tokens_in=Sum("prompt_tokens"),
                                      tokens_out=Sum("completion_tokens"))
        return {"cost": money(row["cost"]), "requests": count(row["requests"]), "tokens_in": count(row["tokens_in"]),
                "tokens_out": count(row["tokens_out"])}

    csv_header = ["day", "key", "team", "project", "user", "organization", "model", "requests", "failed_requests",
                  "prompt_tokens", "completion_tokens", "cost_usd"]

    def csv_rows(self, qs: QuerySet) -> Iterator[list[Any]]:
        for row in qs.iterator(chunk_size=2000):
            yield [row.day.isoformat(), row.key or "", row.team or "", row.project or "", row.user or "",
                   row.organization or "", row.model, row.requests, row.failed_requests, row.prompt_tokens,
                   row.completion_tokens, row.cost]
