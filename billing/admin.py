"""Admin pages for spend: SpendLog (one row per request), DailySpend (rollups) and ModelPrice.

Spend rows are a ledger: read-only here, written only by the spend queue. What a staff user sees
follows their role (llmur.admin_site.spend_scope), as in the accounts admin.
"""
from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import DailySpend, ModelPrice, SpendLog
from llmur.admin_site import actor_of, spend_scope


class ModelNameFilter(admin.SimpleListFilter):
    """Filter by the model group the caller asked for, among the models with priced or logged spend."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        names = set(ModelPrice.objects.values_list("model", flat=True))
        names |= set(DailySpend.objects.order_by().values_list("model", flat=True).distinct()[:200])
        return [(name, name) for name in sorted(names)]

    def queryset(self, request, queryset):
        return queryset.filter(model=self.value()) if self.value() else queryset


class ScopedReadOnlyAdmin(admin.ModelAdmin):
    """Visible to staff within their role's scope; nobody adds, edits or deletes ledger rows."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        scope = spend_scope(actor_of(request))
        return qs if scope is None else qs.filter(scope)


OWNER_FILTERS = [("key", admin.RelatedOnlyFieldListFilter), ("project", admin.RelatedOnlyFieldListFilter),
                 ("team", admin.RelatedOnlyFieldListFilter)]


@admin.register(SpendLog)
class SpendLogAdmin(ScopedReadOnlyAdmin):
    list_display = ["started_at", "request_id", "key_display", "team", "project", "model", "deployment",
                    "prompt_tokens", "completion_tokens", "cost", "status", "http_status", "latency_ms", "stream"]
    list_filter = [("started_at", admin.DateFieldListFilter), *OWNER_FILTERS, ModelNameFilter, "status",
                   "provider", "stream", "cache_hit"]
    date_hierarchy = "started_at"
    search_fields = ["request_id", "key_display", "model", "deployment", "end_user"]
    list_select_related = ["team", "project"]
    show_full_result_count = False   # COUNT(*) over a large ledger on every page is not worth it
    ordering = ["-started_at"]


@admin.register(DailySpend)
class DailySpendAdmin(ScopedReadOnlyAdmin):
    list_display = ["day", "key", "user", "project", "team", "organization", "model", "requests", "failed_requests",
                    "prompt_tokens", "completion_tokens", "cost"]
    list_filter = [("day", admin.DateFieldListFilter), *OWNER_FILTERS, ModelNameFilter]
    date_hierarchy = "day"
    list_select_related = ["key", "user", "project", "team", "organization"]
    ordering = ["-day", "model"]


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """Prices are global: every staff user may read them, only proxy admins change them."""

    list_display = ["model", "provider", "input_cost_per_token", "output_cost_per_token", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["model"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self.has_module_permission(request)

    def _may_edit(self, request: HttpRequest) -> bool:
        actor = actor_of(request)
        return actor.is_proxy_admin and not actor.read_only

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_edit(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_edit(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_edit(request)
