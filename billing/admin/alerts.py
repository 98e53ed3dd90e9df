"""Budget alerts (read-only, with their deliveries) and each team's alert settings."""
from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import display_for_value
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest

from accounts.policy import Actor, ProxyAdminEdits, ProxyAdminMayView, ReadOnly
from billing.alerts import NO_PERIOD, alert_deliveries_dispatch, money
from billing.models import AlertDelivery, BudgetAlert, TeamAlertSetting


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

    list_display = ["created_at", "entity", "threshold", "threshold_in_usd", "spend_in_usd", "max_budget_in_usd",
                    "period", "delivery_status"]
    list_filter = ["entity_kind", "threshold", "deliveries__status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["entity_name", "=entity_id"]
    date_hierarchy = "created_at"
    inlines = [AlertDeliveryInline]
    actions = ["deliver_again"]
    fields = ["entity_kind", "entity_id", "entity_name", "threshold", "threshold_in_usd", "spend_in_usd",
              "max_budget_in_usd", "period", "created_at"]
    readonly_fields = fields

    @admin.display(description="for", ordering="entity_name")
    def entity(self, obj: BudgetAlert) -> str:
        return f"{obj.entity_kind} {obj.entity_name or obj.entity_id}"

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
