"""The base of every accounts admin page: the policy decides, the services write."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from accounts import policy
from accounts.admin.forms import BudgetPeriodField, ModelListField
from accounts.admin.writers import CHILD_WRITERS
from accounts.display import budget_bar, entity_status, usage_link
from accounts.policy import Actor, ReadOnly, StaffMayView
from llmur.core.errors import LlmurError
from llmur.core.money import money

BUDGET_FIELDSET = ("Budget and limits", {"fields": ("spend_vs_budget", "usage", "max_budget", "soft_budget", "budget_duration",
                                                    "budget_reset_at", "rpm_limit", "tpm_limit",
                                                    "max_parallel_requests")})
# The budget and limit fields of an entity's form, read-only to whoever may not set them.
LIMIT_FORM_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests")


def _administered(actor: Actor, field: str) -> QuerySet:
    """What a user below proxy admin may point a team, organization, project or user field at."""
    if field == "team":
        return policy.administered_teams(actor)
    if field == "organization":
        return policy.administered_organizations(actor)
    if field == "project":
        return policy.administered_projects(actor)
    if field == "user":
        return policy.visible_users(actor)
    raise ValueError(f"no administered scope for {field!r}")


# Form field → the keyword the entity's service takes.
SERVICE_NAMES = {"allowed_models": "models"}


def _service_fields(form: forms.ModelForm, names: list[str] | None = None) -> dict[str, Any]:
    """The form's values (all, or only the names given) as keyword arguments of a service."""
    data = form.cleaned_data
    wanted = list(data) if names is None else names
    return {SERVICE_NAMES.get(n, n): data[n] for n in wanted if n in data and n != "id"}


class LimitsWithinParentsForm(forms.ModelForm):
    """Shows a budget, limit or model above the entity's parents' as a form error, before any save."""

    parents: tuple[str, ...] = ()
    what = ""

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors:
            return
        try:
            policy.check_within(self.instance, [getattr(self.instance, name, None) for name in self.parents],
                                what=self.what)
        except LlmurError as exc:
            field = "allowed_models" if exc.param == "models" else exc.param
            self.add_error(field if field in self.fields else None, readable(exc.message))


# What the forms call the budget and limit fields, and how their numbers read in errors.
FIELD_LABELS = {
    "max_budget": ("Max budget (USD)", "Requests are refused once spend reaches it."),
    "soft_budget": ("Soft budget (USD)", "Past it, alerts are sent; requests still go through."),
    "rpm_limit": ("Requests per minute", ""),
    "tpm_limit": ("Tokens per minute", ""),
    "max_parallel_requests": ("Parallel requests", "How many may be in flight at once."),
    "budget_reset_at": ("Budget resets at", ""),
    "key_alias": ("Name", "How the key is shown in lists and reports."),
    "expires_at": ("Expires", "Empty: never."),
    "log_requests": ("Keep prompts and answers", "Stored redacted, for proxy admins to read."),
    "allowed_models": ("Models", ""),
}
_AMOUNT = re.compile(r"\((-?\d+\.\d+)\)")


def readable(message: str) -> str:
    """A policy message in the form's words: labels for raw field names, amounts as money ($20.00)."""
    for name, (label, _) in FIELD_LABELS.items():
        message = message.replace(f"'s {name}", f"'s {label.split(' (')[0].lower()}").replace(
            f"the {name}", f"the {label.split(' (')[0].lower()}")
    return _AMOUNT.sub(lambda m: f"({money(Decimal(m.group(1)))})", message)


class MoneyField(forms.DecimalField):
    """An amount of dollars shown as 20.00 or 0.0021, never 20.00000000."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Decimal):
            return money(value).lstrip("$").replace(",", "")
        return value


class RoleScopedAdmin(StaffMayView, admin.ModelAdmin):
    """Visibility and rights from accounts.policy; every write through accounts.services (audited there).

    Subclasses name the policy's reads and checks (`visible`, `may_change`, `may_delete`, `may_add`)
    and their services (`create`, `update`, `remove`). A write the policy refuses (a service raises
    LlmurError) is rolled back and shown as an error message on the page it came from.
    """

    llmur_audited = True       # audits through accounts.services
    scoped_foreign_keys: tuple[str, ...] = ()  # offered to a non-proxy-admin only as far as they administer it

    # ------------------------------------------------------------------ what the policy says

    def visible(self, actor: Actor) -> QuerySet:
        raise NotImplementedError

    def may_change(self, actor: Actor, obj: Any) -> bool:
        raise NotImplementedError

    def may_delete(self, actor: Actor, obj: Any) -> bool:
        return self.may_change(actor, obj)

    def may_add(self, actor: Actor) -> bool:
        return actor.administers_anything

    # ------------------------------------------------------------------ the services

    def create(self, actor: Actor, form: forms.ModelForm) -> Any:
        raise NotImplementedError

    def update(self, actor: Actor, obj: Any, fields: dict[str, Any]) -> Any:
        raise NotImplementedError

    def remove(self, actor: Actor, obj: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ Django's hooks

    def _actor(self, request: HttpRequest) -> Actor:
        return Actor.of_request(request)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "allowed_models":
            return ModelListField()
        if db_field.name == "budget_duration":
            return BudgetPeriodField()
        if db_field.name in ("max_budget", "soft_budget"):
            kwargs["form_class"] = MoneyField
        if db_field.name in FIELD_LABELS:
            label, help_text = FIELD_LABELS[db_field.name]
            kwargs.setdefault("label", label)
            if help_text:
                kwargs.setdefault("help_text", help_text)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.scoped_foreign_keys:
            actor = self._actor(request)
            if not actor.is_proxy_admin:
                kwargs["queryset"] = _administered(actor, db_field.name)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # The reset time follows budget_duration (services set it); nobody types it.
        return [*super().get_readonly_fields(request, obj), "budget_reset_at", "usage"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        actor = self._actor(request)
        return not actor.read_only and self.may_add(actor)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        actor = self._actor(request)
        if actor.read_only:
            return False
        return self.may_add(actor) if obj is None else self.may_change(actor, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        actor = self._actor(request)
        if actor.read_only:
            return False
        return self.may_add(actor) if obj is None else self.may_delete(actor, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        actor = self._actor(request)
        return qs if actor.is_proxy_admin else qs.filter(pk__in=self.visible(actor).values("pk"))

    def _refused(self, request: HttpRequest, view, *args, **kwargs) -> HttpResponse:
        """Runs an admin view; a write the policy or a service refuses becomes a message, not a 500."""
        try:
            return view(request, *args, **kwargs)
        except LlmurError as exc:  # the view's transaction has been rolled back
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._refused(request, super().changeform_view, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        return self._refused(request, super().changelist_view, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        return self._refused(request, super().delete_view, object_id, extra_context)

    def save_model(self, request, obj, form, change):
        actor = self._actor(request)
        if change:
            saved = self.update(actor, obj, _service_fields(form, form.changed_data))
        else:
            saved = self.create(actor, form)
        obj.pk = saved.pk
        obj._state.adding = False
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        self.remove(self._actor(request), obj)

    def delete_queryset(self, request, queryset):
        # One by one, so each deletion passes the policy, sends its signals and leaves its audit entry.
        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        formset.save(commit=False)  # writes nothing; fills the formset's record of what changed (the admin's log)
        writer = CHILD_WRITERS.get(formset.model)
        if writer is None:  # read-only inlines: nothing to save
            return
        actor = self._actor(request)
        for child in formset.deleted_forms:
            if child.instance.pk:
                writer.remove(actor, child.instance)
        for child in formset.forms:
            if child in formset.deleted_forms or not child.has_changed():
                continue
            writer.save(actor, child.instance, child)

    @admin.display(description="spend", ordering="spend")
    def spend_vs_budget(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return budget_bar(obj.spend, obj.max_budget, obj.soft_budget)

    usage_kind = ""   # "key", "team", "project", "user": the usage page this entity's page links to

    @admin.display(description="usage")
    def usage(self, obj) -> str:
        return usage_link(self.usage_kind, obj) if self.usage_kind else "-"

    @admin.display(description="status", ordering="blocked")
    def status(self, obj) -> str:
        return entity_status(blocked=getattr(obj, "blocked", False))

    @admin.display(description="status", ordering="is_active")
    def active(self, obj) -> str:
        """Projects and people are active or not: the same words and colours as a blocked key or team."""
        return entity_status(blocked=not obj.is_active, word="Inactive")


class PolicyInline(admin.TabularInline):
    """Child rows edited on their parent's page by whoever the policy lets change the parent."""

    extra = 0
    autocomplete_fields = ["user"]

    def may_change_parent(self, actor: Actor, parent: Any) -> bool:
        raise NotImplementedError

    def _may(self, request: HttpRequest, obj: Any) -> bool:
        actor = Actor.of_request(request)
        return not actor.read_only and (obj is None or self.may_change_parent(actor, obj))

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_add_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may(request, obj)


class _ReadOnlyInline(ReadOnly, admin.TabularInline):
    """A parent's children listed for reading, each with a link to its own page where it is changed."""

    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="spend")
    def spend_vs_budget(self, obj):
        return budget_bar(obj.spend, obj.max_budget, obj.soft_budget)
