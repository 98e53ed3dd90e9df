"""Admin for organizations, teams, users, projects, keys and the audit log.

Writes go through accounts.services (same validation, policy checks and audit as the API); what
each staff user sees and may change follows accounts.policy, not Django's model permissions, so
the admin and the API enforce one policy.
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from accounts import policy, services
from accounts.models import (
    AuditEntry,
    Organization,
    OrganizationMembership,
    Project,
    ProjectCredential,
    Role,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)
from accounts.policy import Actor, ProxyAdminMayView, ReadOnly, StaffMayView
from llmur.admin_site import budget_bar
from llmur.core.errors import LlmurError

BUDGET_FIELDSET = ("Budget and limits", {"fields": ("spend_vs_budget", "max_budget", "soft_budget", "budget_duration",
                                                    "budget_reset_at", "rpm_limit", "tpm_limit",
                                                    "max_parallel_requests")})
# The budget and limit fields of an entity's form, read-only to whoever may not set them.
LIMIT_FORM_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests")


class ModelListField(forms.CharField):
    """An allow-list typed as comma-separated model names; empty allows every model."""

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "Comma-separated model names, e.g. gpt-4o, claude-sonnet. Empty allows all.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return ", ".join(value)
        return value or ""

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, list):
            return value
        return [m.strip() for m in (value or "").split(",") if m.strip()]


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
            self.add_error(field if field in self.fields else None, exc.message)


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
            return ModelListField(label="Models")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.scoped_foreign_keys:
            actor = self._actor(request)
            if not actor.is_proxy_admin:
                kwargs["queryset"] = _administered(actor, db_field.name)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # The reset time follows budget_duration (services set it); nobody types it.
        return [*super().get_readonly_fields(request, obj), "budget_reset_at"]

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

    @admin.display(description="spend vs budget")
    def spend_vs_budget(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return budget_bar(obj.spend, obj.max_budget, obj.soft_budget)


class ChildWriter:
    """The services behind one kind of child row (membership, credential), for inlines and their own pages."""

    def save(self, actor: Actor, obj: Any, form: forms.ModelForm) -> None:
        raise NotImplementedError

    def remove(self, actor: Actor, obj: Any) -> None:
        raise NotImplementedError


class TeamMembershipWriter(ChildWriter):
    def save(self, actor, obj, form):
        before = form.initial.get("user")
        if obj.pk and before not in (None, obj.user_id):  # the row now names someone else
            services.team_member_delete(by=actor, team=obj.team, user=User.objects.get(pk=before))
        services.team_member_add(by=actor, team=obj.team, user=obj.user, role=obj.role)

    def remove(self, actor, obj):
        services.team_member_delete(by=actor, team=obj.team, user=obj.user)


class OrganizationMembershipWriter(ChildWriter):
    def save(self, actor, obj, form):
        before = form.initial.get("user")
        if obj.pk and before not in (None, obj.user_id):
            services.organization_member_delete(by=actor, organization=obj.organization,
                                                user=User.objects.get(pk=before))
        services.organization_member_set(by=actor, organization=obj.organization, user=obj.user, role=obj.role)

    def remove(self, actor, obj):
        services.organization_member_delete(by=actor, organization=obj.organization, user=obj.user)


class ProjectCredentialWriter(ChildWriter):
    def save(self, actor, obj, form):
        secret = (form.cleaned_data.get("api_key") or "").strip()
        before = form.initial.get("provider")
        if secret:
            services.project_credential_set(by=actor, project=obj.project, provider=obj.provider, api_key=secret)
            if obj.pk and before and before != obj.provider:
                services.project_credential_delete(by=actor, project=obj.project, provider=before)

    def remove(self, actor, obj):
        services.project_credential_delete(by=actor, project=obj.project, provider=obj.provider)


CHILD_WRITERS: dict[type, ChildWriter] = {
    TeamMembership: TeamMembershipWriter(),
    OrganizationMembership: OrganizationMembershipWriter(),
    ProjectCredential: ProjectCredentialWriter(),
}


# --------------------------------------------------------------------------- organizations

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


class OrganizationMembershipInline(PolicyInline):
    model = OrganizationMembership

    def may_change_parent(self, actor, parent):
        return policy.can_manage_org(actor, parent)


@admin.register(Organization)
class OrganizationAdmin(RoleScopedAdmin):
    list_display = ["name", "spend_vs_budget", "team_count", "blocked", "created_at"]
    list_filter = ["blocked", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name"]
    readonly_fields = ["spend_vs_budget", "spend", "created_at", "updated_at"]
    inlines = [OrganizationMembershipInline]
    fieldsets = [(None, {"fields": ("name", "allowed_models", "blocked", "metadata")}), BUDGET_FIELDSET]

    def visible(self, actor):
        return policy.visible_organizations(actor)

    def may_change(self, actor, obj):
        return policy.can_manage_org(actor, obj)

    def may_delete(self, actor, obj):
        return actor.is_proxy_admin

    def may_add(self, actor):
        return actor.is_proxy_admin

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if not self._actor(request).is_proxy_admin:
            # An organization admin runs it, but its own budget, limits and models come from a proxy admin.
            fields = [*fields, "allowed_models", "blocked", *LIMIT_FORM_FIELDS]
        return fields

    def create(self, actor, form):
        return services.organization_create(by=actor, **_service_fields(form))

    def update(self, actor, obj, fields):
        return services.organization_update(by=actor, organization=obj, **fields)

    def remove(self, actor, obj):
        services.organization_delete(by=actor, organization=obj)

    @admin.display(description="teams")
    def team_count(self, obj: Organization) -> int:
        return obj.teams.count()


# --------------------------------------------------------------------------- teams

class TeamMembershipInline(PolicyInline):
    model = TeamMembership

    def may_change_parent(self, actor, parent):
        return policy.can_manage_team(actor, parent)


class _ReadOnlyInline(ReadOnly, admin.TabularInline):
    """A parent's children listed for reading, each with a link to its own page where it is changed."""

    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="spend vs budget")
    def spend_vs_budget(self, obj):
        return budget_bar(obj.spend, obj.max_budget, obj.soft_budget)


class TeamKeyInline(_ReadOnlyInline):
    """The team's keys, read-only here: keys are created on their own page so the plaintext is shown once."""

    model = VirtualKey
    fk_name = "team"
    fields = ["display", "key_alias", "user", "blocked", "spend_vs_budget", "expires_at", "last_used_at"]
    readonly_fields = fields
    verbose_name_plural = "keys"


class TeamProjectInline(_ReadOnlyInline):
    model = Project
    fk_name = "team"
    fields = ["name", "is_active", "spend_vs_budget"]
    readonly_fields = fields
    verbose_name_plural = "projects"


class TeamForm(LimitsWithinParentsForm):
    parents, what = ("organization",), "team"


@admin.register(Team)
class TeamAdmin(RoleScopedAdmin):
    form = TeamForm
    scoped_foreign_keys = ("organization",)
    list_display = ["name", "organization", "spend_vs_budget", "member_count", "key_count", "blocked", "created_at"]
    list_filter = ["blocked", "organization", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "organization__name"]
    readonly_fields = ["spend_vs_budget", "spend", "created_at", "updated_at"]
    inlines = [TeamMembershipInline, TeamProjectInline, TeamKeyInline]
    fieldsets = [(None, {"fields": ("name", "organization", "allowed_models", "blocked", "metadata")}),
                 BUDGET_FIELDSET, ("Aliases and request log", {"fields": ("aliases", "log_requests")})]
    actions = ["block_selected", "unblock_selected"]

    def visible(self, actor):
        return policy.visible_teams(actor)

    def may_change(self, actor, obj):
        return policy.can_manage_team(actor, obj)

    def may_delete(self, actor, obj):
        return policy.can_delete_team(actor, obj)

    def may_add(self, actor):
        return policy.can_create_team(actor, None) or bool(actor.admin_org_ids)

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and not policy.can_set_team_limits(self._actor(request), obj):
            # A team admin runs the team but cannot raise its own budget, limits or models.
            fields = [*fields, "organization", "allowed_models", "blocked", "aliases", "log_requests",
                      *LIMIT_FORM_FIELDS]
        return fields

    def create(self, actor, form):
        return services.team_create(by=actor, **_service_fields(form))

    def update(self, actor, obj, fields):
        return services.team_update(by=actor, team=obj, **fields)

    def remove(self, actor, obj):
        services.team_delete(by=actor, team=obj)

    @admin.display(description="members")
    def member_count(self, obj: Team) -> int:
        return obj.memberships.count()

    @admin.display(description="keys")
    def key_count(self, obj: Team) -> int:
        return obj.keys.count()

    @admin.action(description="Block selected teams")
    def block_selected(self, request, queryset):
        self._set_blocked(request, queryset, True)

    @admin.action(description="Unblock selected teams")
    def unblock_selected(self, request, queryset):
        self._set_blocked(request, queryset, False)

    def _set_blocked(self, request, queryset, blocked: bool) -> None:
        actor = self._actor(request)
        teams = [team for team in queryset if policy.can_set_team_limits(actor, team)]
        with transaction.atomic():
            for team in teams:
                services.team_update(by=actor, team=team, blocked=blocked)
        skipped = queryset.count() - len(teams)
        self.message_user(request, f"{'Blocked' if blocked else 'Unblocked'} {len(teams)} team(s)."
                          + (f" {skipped} left alone: blocking a team is its organization's or a proxy admin's."
                             if skipped else ""), messages.SUCCESS)


# --------------------------------------------------------------------------- users

# Set while the admin's password page runs, so its form saves through accounts.services as this actor.
_password_changed_by: ContextVar[Actor | None] = ContextVar("llmur_password_changed_by", default=None)


class PasswordChangeForm(AdminPasswordChangeForm):
    """Django's admin password form, saved through services.user_update (policy check and audit)."""

    def save(self, commit=True):
        by = _password_changed_by.get()
        if by is None:
            raise RuntimeError("PasswordChangeForm is saved only by UserAdmin.user_change_password")
        usable = self.cleaned_data.get("set_usable_password", True)
        self.user = services.user_update(by=by, user=self.user,
                                         password=self.cleaned_data["password1"] if usable else None)
        return self.user


def role_label(user: User) -> str:
    """What the user may do, as a label: a superuser is a proxy admin whatever its role field says."""
    if user.is_superuser:
        return f"{Role.PROXY_ADMIN.label} (superuser)"
    return user.get_role_display()


@admin.register(User)
class UserAdmin(RoleScopedAdmin, DjangoUserAdmin):
    """A person's account is a proxy admin's or their own (issue 16.2): team admins see their members here
    but change nothing of theirs."""

    change_password_form = PasswordChangeForm
    list_display = ["username", "email", "role_label", "is_staff", "is_active", "spend_vs_budget", "date_joined"]
    list_filter = ["role", "is_staff", "is_active", ("date_joined", admin.DateFieldListFilter)]
    search_fields = ["username", "email", "first_name", "last_name"]
    readonly_fields = ["effective_role", "spend_vs_budget", "spend", "last_login", "date_joined"]
    fieldsets = [
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Role", {"fields": ("effective_role", "role", "is_active", "is_staff", "is_superuser", "allowed_models",
                             "metadata")}),
        BUDGET_FIELDSET,
        ("Dates", {"fields": ("last_login", "date_joined")}),
    ]
    add_fieldsets = [(None, {"classes": ("wide",), "fields": ("username", "email", "role", "password1", "password2")})]

    def visible(self, actor):
        return policy.visible_users(actor)

    def may_change(self, actor, obj):
        return policy.can_change_user(actor, obj)

    def may_delete(self, actor, obj):
        return actor.is_proxy_admin

    def may_add(self, actor):
        return actor.is_proxy_admin

    @admin.display(description="role", ordering="role")
    def role_label(self, obj: User) -> str:
        return role_label(obj)

    @admin.display(description="effective role")
    def effective_role(self, obj: User | None) -> str:
        return role_label(obj) if obj is not None and obj.pk is not None else "-"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not self._actor(request).is_proxy_admin:
            fields += ["username", "role", "is_active", "is_staff", "is_superuser", "allowed_models",
                       *LIMIT_FORM_FIELDS]
        return fields

    def user_change_password(self, request, id, form_url=""):
        token = _password_changed_by.set(self._actor(request))
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_changed_by.reset(token)

    def create(self, actor, form):
        data = form.cleaned_data
        return services.user_create(by=actor, username=data["username"], email=data.get("email") or "",
                                    role=data.get("role") or "internal_user", password=data.get("password1"))

    def update(self, actor, obj, fields):
        return services.user_update(by=actor, user=obj, **fields)

    def remove(self, actor, obj):
        services.user_delete(by=actor, user=obj)


# --------------------------------------------------------------------------- projects

class ProjectCredentialForm(forms.ModelForm):
    """Write-only: the provider key is typed in, stored encrypted (by the service) and never rendered back."""

    api_key = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                              help_text="Enter to set or replace; never shown again.")

    class Meta:
        model = ProjectCredential
        fields = ["project", "provider", "api_key"]

    def clean(self):
        data = super().clean()
        if not data.get("api_key") and (not self.instance.pk or "provider" in self.changed_data):
            raise forms.ValidationError("Enter the provider's API key.")
        return data


class ProjectCredentialInline(PolicyInline):
    model = ProjectCredential
    form = ProjectCredentialForm
    autocomplete_fields: list[str] = []
    fields = ["provider", "api_key", "display", "updated_at"]
    readonly_fields = ["display", "updated_at"]

    def may_change_parent(self, actor, parent):
        return policy.can_manage_project(actor, parent)


class ProjectKeyInline(TeamKeyInline):
    fk_name = "project"


class ProjectForm(LimitsWithinParentsForm):
    parents, what = ("team", "organization"), "project"


@admin.register(Project)
class ProjectAdmin(RoleScopedAdmin):
    form = ProjectForm
    scoped_foreign_keys = ("team", "organization")
    list_display = ["name", "team", "organization", "is_active", "spend_vs_budget", "created_at"]
    list_filter = ["is_active", "team", "organization", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "team__name", "organization__name"]
    readonly_fields = ["spend_vs_budget", "spend", "created_at", "updated_at"]
    inlines = [ProjectCredentialInline, ProjectKeyInline]
    fieldsets = [(None, {"fields": ("name", "team", "organization", "is_active", "allowed_models", "metadata",
                                    "log_requests")}),
                 BUDGET_FIELDSET]

    def visible(self, actor):
        return policy.visible_projects(actor)

    def may_change(self, actor, obj):
        return policy.can_manage_project(actor, obj)

    def create(self, actor, form):
        return services.project_create(by=actor, **_service_fields(form))

    def update(self, actor, obj, fields):
        return services.project_update(by=actor, project=obj, **fields)

    def remove(self, actor, obj):
        services.project_delete(by=actor, project=obj)


# --------------------------------------------------------------------------- keys

class VirtualKeyForm(LimitsWithinParentsForm):
    parents, what = ("user", "team", "project", "organization"), "key"
    allowed_models = ModelListField(label="Models")

    class Meta:
        model = VirtualKey
        fields = ["key_alias", "user", "team", "project", "organization", "allowed_models", "expires_at", "blocked",
                  "metadata", "max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
                  "max_parallel_requests", "aliases", "log_requests"]


@admin.register(VirtualKey)
class VirtualKeyAdmin(RoleScopedAdmin):
    """Keys a staff user owns or administers; owners may only tighten theirs (services.key_update asks the policy)."""

    scoped_foreign_keys = ("team", "project", "organization", "user")
    form = VirtualKeyForm
    list_display = ["display", "key_alias", "user", "team", "project", "blocked", "spend_vs_budget", "expires_at",
                    "last_used_at", "created_at"]
    list_filter = ["blocked", "team", ("created_at", admin.DateFieldListFilter),
                   ("last_used_at", admin.DateFieldListFilter), ("expires_at", admin.DateFieldListFilter)]
    search_fields = ["key_alias", "display", "user__username", "team__name", "project__name"]
    list_select_related = ["user", "team", "project"]
    readonly_fields = ["display", "spend_vs_budget", "spend", "budget_reset_at", "created_at", "updated_at",
                       "last_used_at"]
    actions = ["block_selected", "unblock_selected"]
    date_hierarchy = "created_at"

    def visible(self, actor):
        return policy.visible_keys(actor)

    def may_change(self, actor, obj):
        return policy.key_rights(actor, obj) >= policy.KeyRights.OWNER

    def may_add(self, actor):
        return True  # anyone who writes may issue their own keys

    def get_fieldsets(self, request, obj=None):
        owner = ("Owner", {"fields": ("user", "team", "project", "organization")})
        main = (None, {"fields": (("display",) if obj else ()) + ("key_alias", "allowed_models", "expires_at",
                                                                    "blocked", "metadata", "aliases",
                                                                    "log_requests")})
        budget = ("Budget and limits", {"fields": (("spend_vs_budget", "budget_reset_at") if obj else ())
                                        + ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
                                           "max_parallel_requests")})
        dates = ("Dates", {"fields": ("created_at", "updated_at", "last_used_at")})
        return [main, owner, budget] + ([dates] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        actor = self._actor(request)
        data = _service_fields(form)
        if not actor.is_proxy_admin and not (data.get("team") or data.get("project") or data.get("organization")):
            data["user"] = actor.user  # a plain user's own key
        key, plaintext = services.key_create(by=actor, **data)
        obj.pk = key.pk
        obj.display = key.display
        request._llmur_new_key = plaintext

    def update(self, actor, obj, fields):
        return services.key_update(by=actor, key=obj, **fields)

    def remove(self, actor, obj):
        services.key_delete(by=actor, key=obj)

    def response_add(self, request: HttpRequest, obj: VirtualKey, post_url_continue=None) -> HttpResponse:
        """Shows the new key once, on this response only: it is in no table, session or cookie."""
        plaintext = getattr(request, "_llmur_new_key", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "title": "Key created", "key": obj,
                   "plaintext": plaintext, "opts": self.model._meta}
        response = TemplateResponse(request, "admin/accounts/virtualkey/key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Block selected keys")
    def block_selected(self, request, queryset):
        self._set_blocked(request, queryset, True)

    @admin.action(description="Unblock selected keys")
    def unblock_selected(self, request, queryset):
        self._set_blocked(request, queryset, False)

    def _set_blocked(self, request, queryset, blocked: bool) -> None:
        actor = self._actor(request)
        done, refused = 0, []
        # One save per key (not queryset.update): each sends post_save, which revokes cached copies.
        for key in queryset.select_related("project"):
            try:
                services.key_set_blocked(by=actor, key=key, blocked=blocked)
                done += 1
            except LlmurError as exc:
                refused.append(f"{key}: {exc.message}")
        self.message_user(request, f"{'Blocked' if blocked else 'Unblocked'} {done} key(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Left alone: " + " ".join(refused), messages.WARNING)


# --------------------------------------------------------------------------- audit

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


# --------------------------------------------------------------------------- memberships and credentials

class _ChildAdmin(RoleScopedAdmin):
    """Rows that belong to a team, organization or project: visible and changeable through their parent."""

    parent_attr = ""

    def visible_parents(self, actor: Actor) -> QuerySet:
        raise NotImplementedError

    def may_change_parent(self, actor: Actor, parent: Any) -> bool:
        raise NotImplementedError

    def visible(self, actor):
        return self.model.objects.filter(**{f"{self.parent_attr}__in": self.visible_parents(actor).values("pk")})

    def may_change(self, actor, obj):
        return self.may_change_parent(actor, getattr(obj, self.parent_attr))

    def get_readonly_fields(self, request, obj=None):
        return admin.ModelAdmin.get_readonly_fields(self, request, obj)

    def save_model(self, request, obj, form, change):
        CHILD_WRITERS[self.model].save(self._actor(request), obj, form)
        saved = self.model.objects.filter(**{self.parent_attr: getattr(obj, self.parent_attr),
                                             **self.identity(obj)}).first()
        if saved is not None:
            obj.pk = saved.pk
            obj._state.adding = False

    def identity(self, obj: Any) -> dict[str, Any]:
        return {"user": obj.user}

    def remove(self, actor, obj):
        CHILD_WRITERS[self.model].remove(actor, obj)


@admin.register(TeamMembership)
class TeamMembershipAdmin(_ChildAdmin):
    parent_attr = "team"
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["user__username", "user__email", "team__name"]
    autocomplete_fields = ["user"]
    list_select_related = ["user", "team"]
    scoped_foreign_keys = ("team",)

    def visible_parents(self, actor):
        return policy.visible_teams(actor)

    def may_change_parent(self, actor, parent):
        return policy.can_manage_team(actor, parent)


@admin.register(OrganizationMembership)
class OrganizationMembershipAdmin(_ChildAdmin):
    parent_attr = "organization"
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user"]
    list_select_related = ["user", "organization"]
    scoped_foreign_keys = ("organization",)

    def visible_parents(self, actor):
        return policy.visible_organizations(actor)

    def may_change_parent(self, actor, parent):
        return policy.can_manage_org(actor, parent)


@admin.register(ProjectCredential)
class ProjectCredentialAdmin(_ChildAdmin):
    """Write-only provider keys: the list shows which providers have one and its last characters."""

    parent_attr = "project"
    form = ProjectCredentialForm
    list_display = ["project", "provider", "display", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["project__name"]
    readonly_fields = ["display", "updated_at"]
    fields = ["project", "provider", "api_key", "display", "updated_at"]
    scoped_foreign_keys = ("project",)

    def visible_parents(self, actor):
        return policy.visible_projects(actor)

    def may_change_parent(self, actor, parent):
        return policy.can_manage_project(actor, parent)

    def identity(self, obj):
        return {"provider": obj.provider}


# Agent sign-ins (RFC 8628 device flow) have their page in a module of their own.
from accounts import admin_device  # noqa: E402, F401
