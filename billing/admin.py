"""Admin pages for spend: SpendLog (one row per request), DailySpend (rollups) and ModelPrice.

Spend rows are a ledger: read-only here, written only by the spend queue. What a staff user sees
follows their role (accounts.policy.spend_scope), as in the accounts admin.
"""
from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from accounts import policy
from accounts.policy import Actor, ProxyAdminEdits, ProxyAdminMayView, ReadOnly, StaffMayView
from billing import selectors
from billing.models import DailySpend, ModelPrice, SpendLog


class ModelNameFilter(admin.SimpleListFilter):
    """Filter by the model group the caller asked for, among the models with priced or rolled-up spend.

    The names come from small tables (prices, deployments, the day × model rollup), never from a
    DISTINCT over the ledger, which is a full scan of millions of rows.
    """

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return [(name, name) for name in selectors.spend_model_choices()]

    def queryset(self, request, queryset):
        return queryset.filter(model=self.value()) if self.value() else queryset


class ProviderFilter(admin.SimpleListFilter):
    """Filter by provider, with the providers of the configured deployments as choices."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        return [(name, name) for name in selectors.spend_provider_choices()]

    def queryset(self, request, queryset):
        return queryset.filter(provider=self.value()) if self.value() else queryset


class ScopedOwnerFilter(admin.RelatedFieldListFilter):
    """Owner choices from the owner's own table, within the viewer's role, not from the ledger's rows.

    Django's RelatedOnlyFieldListFilter runs a DISTINCT over every ledger row to find the owners
    that appear in it; here the choices are the owners the viewer may see (the biggest spenders
    first for keys, capped), and the URL parameter (e.g. key__id__exact) filters on any id.
    """

    CAP = 100

    def field_choices(self, field, request, model_admin):
        actor = Actor.of_request(request)
        model = field.related_model
        if model._meta.model_name == "virtualkey":
            qs = policy.visible_keys(actor).order_by("-spend", "pk")
        elif model._meta.model_name == "team":
            qs = policy.visible_teams(actor).order_by("name")
        elif model._meta.model_name == "project":
            qs = policy.visible_projects(actor).order_by("name")
        else:
            return []
        return [(obj.pk, str(obj)) for obj in qs[:self.CAP]]


class EstimatedCountPaginator(Paginator):
    """Counts a large table without reading it: PostgreSQL's estimate when unfiltered, else capped.

    The admin shows "N rows" and the page links from this count; an exact COUNT(*) over 10 M ledger
    rows takes seconds. Unfiltered, pg_class.reltuples (kept by autovacuum/ANALYZE) is close enough;
    filtered, counting stops at COUNT_CAP rows, and the page links stop there too.
    """

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if connection.vendor == "postgresql" and not qs.query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [qs.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] >= self.COUNT_CAP:
                return int(row[0])
        return qs.order_by()[:self.COUNT_CAP].count()


class ScopedReadOnlyAdmin(StaffMayView, ReadOnly, admin.ModelAdmin):
    """Visible to staff within their role's scope; nobody adds, edits or deletes ledger rows."""

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        scope = policy.spend_scope(Actor.of_request(request))
        return qs if scope is None else qs.filter(scope)


OWNER_FILTERS = [("key", ScopedOwnerFilter), ("project", ScopedOwnerFilter), ("team", ScopedOwnerFilter)]


@admin.register(SpendLog)
class SpendLogAdmin(ScopedReadOnlyAdmin):
    """The ledger's list stays fast at 10 M rows: every query it runs is an index walk with a LIMIT.

    No date_hierarchy (its year links are a DISTINCT date_trunc over every row; the date filter
    covers the same ground with started_at ranges), filter choices from small tables, an estimated
    count, newest first on the started_at index, and exact-match search (a substring search would
    scan the whole table).
    """

    list_display = ["started_at", "request_id", "key_display", "team", "project", "model", "deployment",
                    "prompt_tokens", "completion_tokens", "cost", "status", "http_status", "latency_ms", "stream"]
    list_filter = [("started_at", admin.DateFieldListFilter), *OWNER_FILTERS, ModelNameFilter, "status",
                   ProviderFilter, "stream", "cache_hit"]
    search_fields = ["=request_id", "=client_request_id", "=response_id", "=key_display", "=end_user"]
    list_select_related = ["team", "project"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ["-started_at", "-id"]


@admin.register(DailySpend)
class DailySpendAdmin(ScopedReadOnlyAdmin):
    list_display = ["day", "key", "user", "project", "team", "organization", "model", "requests", "failed_requests",
                    "prompt_tokens", "completion_tokens", "cost"]
    list_filter = [("day", admin.DateFieldListFilter), *OWNER_FILTERS, ModelNameFilter]
    list_select_related = ["key", "user", "project", "team", "organization"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    ordering = ["-day", "-id"]


@admin.register(ModelPrice)
class ModelPriceAdmin(StaffMayView, ProxyAdminEdits, admin.ModelAdmin):
    """Prices are global: every staff user may read them, only proxy admins change them."""

    list_display = ["model", "provider", "input_cost_per_token", "output_cost_per_token", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["model"]


# --------------------------------------------------------------------------- budget alerts

from django import forms  # noqa: E402
from django.contrib.admin.utils import display_for_value  # noqa: E402
from django.core.exceptions import ValidationError  # noqa: E402
from django.db.models import Prefetch  # noqa: E402

from billing.alerts import NO_PERIOD, alert_deliveries_dispatch, money  # noqa: E402
from billing.models import AlertDelivery, BudgetAlert, TeamAlertSetting  # noqa: E402


class AlertDeliveryInline(ReadOnly, admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = ["channel", "target", "status", "attempts", "last_error", "last_attempt_at", "next_attempt_at",
              "delivered_at"]
    readonly_fields = fields


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ProxyAdminMayView, ReadOnly, admin.ModelAdmin):
    """Alerts name every entity's spend, so only proxy admins read them; nobody edits them."""

    list_display = ["created_at", "entity_kind", "entity_name", "entity_id", "threshold", "threshold_in_usd",
                    "spend_in_usd", "max_budget_in_usd", "period", "delivery_status"]
    list_filter = ["entity_kind", "threshold", "deliveries__status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["entity_name", "=entity_id"]
    date_hierarchy = "created_at"
    inlines = [AlertDeliveryInline]
    actions = ["deliver_again"]
    fields = ["entity_kind", "entity_id", "entity_name", "threshold", "threshold_in_usd", "spend_in_usd",
              "max_budget_in_usd", "period", "created_at"]
    readonly_fields = fields

    # Money as refusals and alert messages write it ($0.0021, not 0.00210000). A budget that never
    # resets has its alerts' period_start stored as 1970 (the unique constraint needs a value): "no reset".
    @admin.display(description="threshold amount", ordering="threshold_amount")
    def threshold_in_usd(self, obj: BudgetAlert) -> str:
        return money(obj.threshold_amount)

    @admin.display(description="spend", ordering="spend")
    def spend_in_usd(self, obj: BudgetAlert) -> str:
        return money(obj.spend)

    @admin.display(description="max budget", ordering="max_budget")
    def max_budget_in_usd(self, obj: BudgetAlert) -> str:
        return money(obj.max_budget) if obj.max_budget is not None else "-"

    @admin.display(description="period start", ordering="period_start")
    def period(self, obj: BudgetAlert) -> str:
        return "no reset" if obj.period_start == NO_PERIOD else display_for_value(obj.period_start, "-")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related(Prefetch("deliveries"))

    @admin.display(description="delivery")
    def delivery_status(self, obj: BudgetAlert) -> str:
        return ", ".join(f"{d.channel}: {d.get_status_display()} ({d.attempts})" for d in obj.deliveries.all()) or \
            "no channel configured"

    def has_deliver_again_permission(self, request: HttpRequest) -> bool:
        return not Actor.of_request(request).read_only

    @admin.action(description="Deliver again (failed and dead channels)", permissions=["deliver_again"])
    def deliver_again(self, request: HttpRequest, queryset: QuerySet) -> None:
        deliveries = AlertDelivery.objects.filter(alert__in=queryset).exclude(status=AlertDelivery.Status.DELIVERED)
        ids = list(deliveries.values_list("pk", flat=True))
        deliveries.update(status=AlertDelivery.Status.PENDING, attempts=0, last_error="", next_attempt_at=None)
        alert_deliveries_dispatch(delivery_ids=ids)
        self.message_user(request, f"{len(ids)} deliveries queued again.")


class TeamAlertSettingForm(forms.ModelForm):
    """Thresholds as a JSON list of percentages; addresses checked one by one."""

    webhook_url = forms.URLField(required=False, assume_scheme="https",
                                 help_text="Signed with the config's alerting.webhook_secret.")

    class Meta:
        model = TeamAlertSetting
        fields = ["team", "enabled", "thresholds", "webhook_url", "email_to"]

    def clean_thresholds(self):
        value = self.cleaned_data.get("thresholds") or []
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  and 0 < v <= 1000 for v in value):
            raise ValidationError("Give a list of percentages of max_budget, e.g. [50, 80, 100].")
        return sorted(set(value))

    def clean_email_to(self):
        from django.core.validators import validate_email

        value = self.cleaned_data.get("email_to") or ""
        for address in (a.strip() for a in value.split(",")):
            if address:
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError(f"{address!r} is not an e-mail address.") from None
        return value


@admin.register(TeamAlertSetting)
class TeamAlertSettingAdmin(ProxyAdminMayView, ProxyAdminEdits, admin.ModelAdmin):
    form = TeamAlertSettingForm
    list_display = ["team", "enabled", "thresholds", "webhook_url", "email_to"]
    list_select_related = ["team"]
    autocomplete_fields = ["team"]
    search_fields = ["team__name"]
