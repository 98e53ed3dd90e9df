"""Admin for organizations, teams, users, projects, keys and the audit log.

Writes go through accounts.services (same validation and audit as the API); what each staff user
sees and may change follows their role (accounts.roles.Actor), not Django's model permissions, so
the admin and the API enforce one policy.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from accounts import services
from accounts.audit import audit_record, snapshot
from accounts.models import (
    AuditEntry,
    Organization,
    OrganizationMembership,
    Project,
    ProjectCredential,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)
from llmur.admin_site import actor_of, budget_bar
from llmur.core.errors import LlmurError

BUDGET_FIELDSET = ("Budget and limits", {"fields": ("spend_vs_budget", "max_budget", "soft_budget", "budget_duration",
                                                    "budget_reset_at", "rpm_limit", "tpm_limit",
                                                    "max_parallel_requests")})


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


def _administered(actor, field: str) -> QuerySet:
    """What a user below proxy admin may point a team, organization, project or user field at."""
    if field == "team":
        return Team.objects.filter(pk__in=actor.admin_team_ids)
    if field == "organization":
        return Organization.objects.filter(pk__in=actor.admin_org_ids)
    if field == "project":
        return actor.projects().filter(team_id__in=actor.admin_team_ids) | \
            actor.projects().filter(organization_id__in=actor.admin_org_ids)
    if field == "user":
        return actor.users()
    raise ValueError(f"no administered scope for {field!r}")


class RoleScopedAdmin(admin.ModelAdmin):
    """Visibility and rights from the actor's role; every change leaves an audit entry."""

    llmur_audited = True       # audits its own writes (below and in accounts.services)
    scope_attr = ""            # Actor method giving the visible queryset, e.g. "teams"
    manage_check = ""          # Actor method taking an object, e.g. "can_manage_team"
    scoped_foreign_keys: tuple[str, ...] = ()  # offered to a non-proxy-admin only as far as they administer it

    def _actor(self, request: HttpRequest):
        return actor_of(request)

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

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        actor = self._actor(request)
        return not actor.read_only and (actor.is_proxy_admin or bool(actor.admin_team_ids or actor.admin_org_ids))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        actor = self._actor(request)
        if actor.read_only:
            return False
        if obj is None:
            return actor.is_proxy_admin or bool(actor.admin_team_ids or actor.admin_org_ids) or \
                self.scope_attr == "keys"
        return getattr(actor, self.manage_check)(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = super().get_queryset(request)
        actor = self._actor(request)
        if actor.is_proxy_admin or not self.scope_attr:
            return qs
        return qs.filter(pk__in=getattr(actor, self.scope_attr)().values("pk"))

    # ------------------------------------------------------------------ audit for generic saves

    def save_model(self, request, obj, form, change):
        before = snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        audit_record(by=self._actor(request), action="update" if change else "create", instance=obj, before=before,
                     after=snapshot(obj))

    def delete_model(self, request, obj):
        before, pk = snapshot(obj), obj.pk
        super().delete_model(request, obj)
        audit_record(by=self._actor(request), action="delete", instance=obj, before=before, entity_id=str(pk))

    def delete_queryset(self, request, queryset):
        # One by one, so each deletion sends its signals (key revocation) and leaves its audit entry.
        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)

    def save_formset(self, request, form, formset, change):
        actor = self._actor(request)
        befores = {f.instance.pk: snapshot(type(f.instance).objects.filter(pk=f.instance.pk).first())
                   for f in formset.initial_forms if f.instance.pk and f.has_changed()}
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            pk = obj.pk
            before = snapshot(obj)
            obj.delete()
            audit_record(by=actor, action="delete", instance=obj, before=before, entity_id=str(pk))
        for obj in instances:
            created = obj.pk is None
            obj.save()
            audit_record(by=actor, action="create" if created else "update", instance=obj,
                         before=None if created else befores.get(obj.pk), after=snapshot(obj))
        formset.save_m2m()

    @admin.display(description="spend vs budget")
    def spend_vs_budget(self, obj) -> str:
        if obj is None or obj.pk is None:
            return "-"
        return budget_bar(obj.spend, obj.max_budget, obj.soft_budget)


# --------------------------------------------------------------------------- organizations

class OrganizationMembershipInline(admin.TabularInline):
    model = OrganizationMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(RoleScopedAdmin):
    scope_attr, manage_check = "organizations", "can_manage_org"
    list_display = ["name", "spend_vs_budget", "team_count", "blocked", "created_at"]
    list_filter = ["blocked", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name"]
    readonly_fields = ["spend_vs_budget", "spend", "created_at", "updated_at"]
    inlines = [OrganizationMembershipInline]
    fieldsets = [(None, {"fields": ("name", "allowed_models", "blocked", "metadata")}), BUDGET_FIELDSET]

    def has_add_permission(self, request):
        return self._actor(request).is_proxy_admin

    @admin.display(description="teams")
    def team_count(self, obj: Organization) -> int:
        return obj.teams.count()


# --------------------------------------------------------------------------- teams

class TeamMembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 0
    autocomplete_fields = ["user"]


class _ReadOnlyInline(admin.TabularInline):
    """A parent's children listed for reading, each with a link to its own page where it is changed."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

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


@admin.register(Team)
class TeamAdmin(RoleScopedAdmin):
    scope_attr, manage_check = "teams", "can_manage_team"
    scoped_foreign_keys = ("organization",)
    list_display = ["name", "organization", "spend_vs_budget", "member_count", "key_count", "blocked", "created_at"]
    list_filter = ["blocked", "organization", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "organization__name"]
    readonly_fields = ["spend_vs_budget", "spend", "created_at", "updated_at"]
    inlines = [TeamMembershipInline, TeamProjectInline, TeamKeyInline]
    fieldsets = [(None, {"fields": ("name", "organization", "allowed_models", "blocked", "metadata")}),
                 BUDGET_FIELDSET, ("Aliases and request log", {"fields": ("aliases", "log_requests")})]
    actions = ["block_selected", "unblock_selected"]

    def has_add_permission(self, request):
        actor = self._actor(request)
        return actor.is_proxy_admin or bool(actor.admin_org_ids)

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        actor = self._actor(request)
        if obj is not None and not actor.is_proxy_admin and obj.organization_id not in actor.admin_org_ids:
            # A team admin runs the team but cannot raise its own budget, limits or models.
            fields += ["organization", "allowed_models", "blocked", "max_budget", "soft_budget", "budget_duration",
                       "budget_reset_at", "rpm_limit", "tpm_limit", "max_parallel_requests", "log_requests"]
        return fields

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
        if not actor.is_proxy_admin:
            queryset = queryset.filter(organization_id__in=actor.admin_org_ids)
        count = 0
        for team in queryset:
            services.team_update(by=actor, team=team, blocked=blocked)
            count += 1
        self.message_user(request, f"{'Blocked' if blocked else 'Unblocked'} {count} team(s).", messages.SUCCESS)


# --------------------------------------------------------------------------- users

@admin.register(User)
class UserAdmin(RoleScopedAdmin, DjangoUserAdmin):
    scope_attr, manage_check = "users", "can_manage_user"
    list_display = ["username", "email", "role", "is_staff", "is_active", "spend_vs_budget", "date_joined"]
    list_filter = ["role", "is_staff", "is_active", ("date_joined", admin.DateFieldListFilter)]
    search_fields = ["username", "email", "first_name", "last_name"]
    readonly_fields = ["spend_vs_budget", "spend", "last_login", "date_joined"]
    fieldsets = [
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Role", {"fields": ("role", "is_active", "is_staff", "is_superuser", "allowed_models", "metadata")}),
        BUDGET_FIELDSET,
        ("Dates", {"fields": ("last_login", "date_joined")}),
    ]
    add_fieldsets = [(None, {"classes": ("wide",), "fields": ("username", "email", "role", "password1", "password2")})]

    def has_add_permission(self, request):
        return self._actor(request).is_proxy_admin

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not self._actor(request).is_proxy_admin:
            fields += ["role", "is_staff", "is_superuser", "allowed_models", "max_budget", "soft_budget",
                       "budget_duration", "budget_reset_at", "rpm_limit", "tpm_limit", "max_parallel_requests"]
        return fields


# --------------------------------------------------------------------------- projects

class ProjectCredentialForm(forms.ModelForm):
    """Write-only: the provider key is typed in, stored encrypted and never rendered back."""

    api_key = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                              help_text="Enter to set or replace; never shown again.")

    class Meta:
        model = ProjectCredential
        fields = ["project", "provider", "api_key"]

    def clean(self):
        data = super().clean()
        if not self.instance.pk and not data.get("api_key"):
            raise forms.ValidationError("Enter the provider's API key.")
        return data

    def save(self, commit=True):
        from accounts.keys import secret_encrypt

        secret = self.cleaned_data.get("api_key")
        if secret:
            self.instance.encrypted_api_key = secret_encrypt(secret.strip())
            self.instance.display = "…" + secret.strip()[-4:]
        return super().save(commit)


class ProjectCredentialInline(admin.TabularInline):
    model = ProjectCredential
    form = ProjectCredentialForm
    extra = 0
    fields = ["provider", "api_key", "display", "updated_at"]
    readonly_fields = ["display", "updated_at"]


class ProjectKeyInline(TeamKeyInline):
    fk_name = "project"


@admin.register(Project)
class ProjectAdmin(RoleScopedAdmin):
    scope_attr, manage_check = "projects", "can_manage_project"
    scoped_foreign_keys = ("team", "organization")
    list_display = ["name", "team", "organization", "is_active", "spend_vs_budget", "created_at"]
    list_filter = ["is_active", "team", "organization", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "team__name", "organization__name"]
    readonly_fields = ["spend_vs_budget", "spend", "created_at", "updated_at"]
    inlines = [ProjectCredentialInline, ProjectKeyInline]
    fieldsets = [(None, {"fields": ("name", "team", "organization", "is_active", "allowed_models", "metadata",
                                    "log_requests")}),
                 BUDGET_FIELDSET]

    def save_model(self, request, obj, form, change):
        try:
            services._check_within(obj, [obj.team, obj.organization], what="project")
        except LlmurError as exc:
            raise forms.ValidationError(exc.message) from None
        super().save_model(request, obj, form, change)


# --------------------------------------------------------------------------- keys

class VirtualKeyForm(forms.ModelForm):
    allowed_models = ModelListField(label="Models")

    class Meta:
        model = VirtualKey
        fields = ["key_alias", "user", "team", "project", "organization", "allowed_models", "expires_at", "blocked",
                  "metadata", "max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
                  "max_parallel_requests", "aliases", "log_requests"]

    def clean(self):
        data = super().clean()
        candidate = VirtualKey(**{k: v for k, v in data.items() if k in self.Meta.fields and k != "allowed_models"},
                               allowed_models=data.get("allowed_models") or [])
        try:
            services._check_within(candidate, services._key_parents(candidate), what="key")
        except LlmurError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


@admin.register(VirtualKey)
class VirtualKeyAdmin(RoleScopedAdmin):
    scope_attr, manage_check = "keys", "can_manage_key"
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

    def has_add_permission(self, request):
        return not self._actor(request).read_only

    def save_model(self, request, obj, form, change):
        actor = self._actor(request)
        data = {k: v for k, v in form.cleaned_data.items() if k in VirtualKeyForm.Meta.fields}
        data["models"] = data.pop("allowed_models", [])
        if change:
            changed = {("models" if name == "allowed_models" else name) for name in form.changed_data}
            services.key_update(by=actor, key=obj, **{k: v for k, v in data.items() if k in changed})
            obj.refresh_from_db()
            return
        if not actor.is_proxy_admin and not (data.get("team") or data.get("project") or data.get("organization")):
            data["user"] = actor.user  # a plain user's own key
        key, plaintext = services.key_create(by=actor, **data)
        obj.pk = key.pk
        obj.display = key.display
        request._llmur_new_key = plaintext

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
        done = 0
        # One save per key (not queryset.update): each sends post_save, which revokes cached copies.
        for key in queryset.select_related("project"):
            if actor.can_manage_key(key):
                services.key_set_blocked(by=actor, key=key, blocked=blocked)
                done += 1
        self.message_user(request, f"{'Blocked' if blocked else 'Unblocked'} {done} key(s).", messages.SUCCESS)

    def delete_model(self, request, obj):
        services.key_delete(by=self._actor(request), key=obj)


# --------------------------------------------------------------------------- audit

@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: the audit log is written by services and admin saves, never edited."""

    llmur_audited = True

    list_display = ["created_at", "actor", "source", "action", "entity_type", "entity_repr"]
    list_filter = ["source", "action", "entity_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor", "entity_repr", "entity_id"]
    readonly_fields = ["created_at", "actor", "actor_user", "source", "action", "entity_type", "entity_id",
                       "entity_repr", "changes"]
    exclude = ["before", "after"]
    date_hierarchy = "created_at"

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and actor_of(request).is_proxy_admin

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

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
    parent_scope = ""          # Actor method giving the visible parents
    parent_check = ""          # Actor method taking the parent

    def get_queryset(self, request):
        qs = admin.ModelAdmin.get_queryset(self, request)
        actor = self._actor(request)
        if actor.is_proxy_admin:
            return qs
        return qs.filter(**{f"{self.parent_attr}__in": getattr(actor, self.parent_scope)().values("pk")})

    def has_change_permission(self, request, obj=None):
        actor = self._actor(request)
        if actor.read_only:
            return False
        if obj is None:
            return actor.is_proxy_admin or bool(actor.admin_team_ids or actor.admin_org_ids)
        return getattr(actor, self.parent_check)(getattr(obj, self.parent_attr))


@admin.register(TeamMembership)
class TeamMembershipAdmin(_ChildAdmin):
    parent_attr, parent_scope, parent_check = "team", "teams", "can_manage_team"
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["user__username", "user__email", "team__name"]
    autocomplete_fields = ["user"]
    list_select_related = ["user", "team"]
    scoped_foreign_keys = ("team",)


@admin.register(OrganizationMembership)
class OrganizationMembershipAdmin(_ChildAdmin):
    parent_attr, parent_scope, parent_check = "organization", "organizations", "can_manage_org"
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user"]
    list_select_related = ["user", "organization"]
    scoped_foreign_keys = ("organization",)


@admin.register(ProjectCredential)
class ProjectCredentialAdmin(_ChildAdmin):
    """Write-only provider keys: the list shows which providers have one and its last characters."""

    parent_attr, parent_scope, parent_check = "project", "projects", "can_manage_project"
    form = ProjectCredentialForm
    list_display = ["project", "provider", "display", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["project__name"]
    readonly_fields = ["display", "updated_at"]
    fields = ["project", "provider", "api_key", "display", "updated_at"]
    scoped_foreign_keys = ("project",)
