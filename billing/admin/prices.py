"""Model prices: kept per token (as providers publish them), shown and typed per million tokens."""
from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import admin

from accounts.policy import ProxyAdminEdits, StaffMayView
from billing.models import ModelPrice
from llmur.core.money import PER_MILLION, money, per_million


class ModelPriceForm(forms.ModelForm):
    """Prices typed in dollars per million tokens, as every provider's price page writes them."""

    input_per_million = forms.DecimalField(label="Input, $ per 1M tokens", min_value=0, decimal_places=6,
                                           max_digits=16)
    output_per_million = forms.DecimalField(label="Output, $ per 1M tokens", min_value=0, decimal_places=6,
                                            max_digits=16)

    class Meta:
        model = ModelPrice
        fields = ["model", "provider"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            for name, field in (("input_per_million", "input_cost_per_token"),
                                ("output_per_million", "output_cost_per_token")):
                per_token = getattr(self.instance, field) or Decimal(0)
                self.fields[name].initial = money(per_token * PER_MILLION).lstrip("$").replace(",", "")

    def save(self, commit=True):
        self.instance.input_cost_per_token = self.cleaned_data["input_per_million"] / PER_MILLION
        self.instance.output_cost_per_token = self.cleaned_data["output_per_million"] / PER_MILLION
        return super().save(commit)


@admin.register(ModelPrice)
class ModelPriceAdmin(StaffMayView, ProxyAdminEdits, admin.ModelAdmin):
    """Prices are global: every staff user may read them, only proxy admins change them."""

    form = ModelPriceForm
    list_display = ["model", "provider", "input_price", "output_price", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["model"]
    fields = ["model", "provider", "input_per_million", "output_per_million"]
    readonly_fields = ["input_price", "output_price", "updated_at"]

    def get_fields(self, request, obj=None):
        if not self.has_change_permission(request, obj):  # a read-only page shows the prices, not the form's inputs
            return ["model", "provider", "input_price", "output_price", "updated_at"]
        return self.fields

    @admin.display(description="input per 1M tokens", ordering="input_cost_per_token")
    def input_price(self, obj: ModelPrice) -> str:
        return per_million(obj.input_cost_per_token)

    @admin.display(description="output per 1M tokens", ordering="output_cost_per_token")
    def output_price(self, obj: ModelPrice) -> str:
        return per_million(obj.output_cost_per_token)
