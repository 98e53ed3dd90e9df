"""Admin for deployments: the config's and the database's, with prices and recent health side by side."""
from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from accounts.policy import Actor, ProxyAdminEdits, ProxyAdminMayView, ReadOnly
from billing.models import ModelPrice
from billing.reports import deployment_health
from gateway import model_services
from gateway.models import ModelDeployment


class DeploymentForm(forms.ModelForm):
    """Add or change a database deployment; the provider key is write-only and stored encrypted."""

    upstream_model = forms.CharField(help_text="provider/name, e.g. openai/gpt-4o or anthropic/claude-sonnet-4")
    api_base = forms.URLField(required=False, assume_scheme="https")
    api_key = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                              help_text="The provider's key, or os.environ/NAME. Stored encrypted; never shown. "
                                        "Leave empty to keep the current one.")
    extra_params = forms.JSONField(required=False, initial=dict,
                                   help_text='Other litellm_params, e.g. {"api_version": "2024-06-01", "rpm": 100}')

    class Meta:
        model = ModelDeployment
        fields = ["model_name", "model_info", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        params = dict(self.instance.litellm_params or {}) if self.instance.pk else {}
        self.fields["upstream_model"].initial = params.pop("model", "")
        self.fields["api_base"].initial = params.pop("api_base", "")
        params.pop("api_key", None)
        self.fields["extra_params"].initial = params

    def litellm_params(self) -> dict:
        data = self.cleaned_data
        params = {**(data.get("extra_params") or {}), "model": data["upstream_model"]}
        if data.get("api_base"):
            params["api_base"] = data["api_base"]
        if data.get("api_key"):
            params["api_key"] = data["api_key"]
        return params


@admin.register(ModelDeployment)
class ModelDeploymentAdmin(ProxyAdminMayView, ProxyAdminEdits, admin.ModelAdmin):
    """Deployments show upstream addresses and headers: proxy admins only (issue 16.8), who alone change them."""

    llmur_audited = True  # writes go through gateway.model_services, which audits
    form = DeploymentForm
    # What fits a laptop screen; the upstream address and parameters are on the deployment's page.
    list_display = ["model_name", "upstream", "source", "is_active", "price", "health"]
    list_filter = ["source", "provider", "is_active"]
    search_fields = ["model_name", "deployment_id"]
    readonly_fields = ["deployment_id", "source", "provider", "params_shown", "price", "health", "created_at",
                       "updated_at", "base_url"]
    fieldsets = [(None, {"fields": ("model_name", "upstream_model", "api_base", "api_key", "extra_params",
                                    "model_info", "is_active")}),
                 ("Current", {"fields": ("deployment_id", "source", "provider", "params_shown", "price", "health",
                                         "created_at", "updated_at")})]

    def get_changelist_instance(self, request):
        # One health query and one price query per page, not per row.
        self._health = deployment_health()
        self._prices = {p.model: p for p in ModelPrice.objects.all()}
        return super().get_changelist_instance(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (
            obj is None or obj.source == ModelDeployment.Source.DATABASE)

    def has_delete_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    @admin.display(description="upstream model")
    def upstream(self, obj: ModelDeployment) -> str:
        return obj.litellm_params.get("model", "")

    @admin.display(description="upstream address")
    def base_url(self, obj: ModelDeployment) -> str:
        return obj.litellm_params.get("api_base", "") or "the provider's default"

    # Shown instead of the form's inputs on a read-only page (a deployment from the config file).
    @admin.display(description="upstream model")
    def upstream_model(self, obj: ModelDeployment) -> str:
        return obj.litellm_params.get("model", "") or "-"

    @admin.display(description="upstream address")
    def api_base(self, obj: ModelDeployment) -> str:
        return self.base_url(obj)

    @admin.display(description="upstream parameters")
    def params_shown(self, obj: ModelDeployment) -> str:
        params = model_services.public_params(obj.litellm_params)
        if not params:
            return "-"
        return format_html("<pre>{}</pre>", json.dumps(params, indent=2))

    @admin.display(description="price per 1M tokens (in / out)")
    def price(self, obj: ModelDeployment) -> str:
        info = obj.model_info or {}
        upstream = obj.litellm_params.get("model", "").split("/", 1)[-1]
        prices = getattr(self, "_prices", None)
        price = prices.get(upstream) if prices is not None else ModelPrice.objects.filter(model=upstream).first()
        cost_in = info.get("input_cost_per_token", price.input_cost_per_token if price else None)
        cost_out = info.get("output_cost_per_token", price.output_cost_per_token if price else None)
        if cost_in is None and cost_out is None:
            return "no price"
        return f"${float(cost_in or 0) * 1e6:.2f} / ${float(cost_out or 0) * 1e6:.2f}"

    @admin.display(description="last hour")
    def health(self, obj: ModelDeployment) -> str:
        """Requests and failures of the last hour; the model health page has the day and the errors."""
        stats = getattr(self, "_health", None)
        row = (stats if stats is not None else deployment_health()).get(obj.deployment_id)
        if not row:
            return "no traffic"
        colour = "#c0392b" if row["failures"] * 2 > row["requests"] else "#e69500" if row["failures"] else "#2e8b57"
        return format_html('<a href="{}" style="color:{}">{} req, {} failed</a><br><small>{} ms mean</small>',
                           reverse("admin:billing_health"), colour, f"{row['requests']:,}", f"{row['failures']:,}",
                           f"{row['mean_latency_ms']:,}")

    def save_model(self, request, obj, form, change):
        actor = Actor.of_request(request)
        if change:
            saved = model_services.deployment_update(
                by=actor, deployment=obj, model_name=form.cleaned_data["model_name"],
                litellm_params=form.litellm_params(), model_info=form.cleaned_data.get("model_info") or {},
                is_active=form.cleaned_data.get("is_active", True))
        else:
            saved = model_services.deployment_create(by=actor, model_name=form.cleaned_data["model_name"],
                                                     litellm_params=form.litellm_params(),
                                                     model_info=form.cleaned_data.get("model_info") or {})
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        model_services.deployment_delete(by=Actor.of_request(request), deployment=obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


# --------------------------------------------------------------------------- request log

from gateway.models import RequestLog  # noqa: E402


@admin.register(RequestLog)
class RequestLogAdmin(ProxyAdminMayView, ReadOnly, admin.ModelAdmin):
    """Prompts and answers (redacted) of keys, projects and teams that log them: proxy admins only, read-only."""

    list_display = ["created_at", "request_id", "key_display", "team", "project", "model", "http_status", "stream"]
    list_filter = [("created_at", admin.DateFieldListFilter), "http_status", "stream", "call_type"]
    search_fields = ["=request_id"]
    date_hierarchy = "created_at"
    list_select_related = ["team", "project"]
    show_full_result_count = False
    readonly_fields = [f.name for f in RequestLog._meta.fields]
