"""Projects: provider credentials (write-only) and the project's keys."""
from __future__ import annotations

from django.contrib import admin

from accounts import policy, services
from accounts.admin.base import BUDGET_FIELDSET, LimitsWithinParentsForm, PolicyInline, RoleScopedAdmin, _service_fields
from accounts.admin.forms import ProjectCredentialForm
from accounts.admin.teams import TeamKeyInline
from accounts.models import Project, ProjectCredential


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
    list_display = ["name", "active", "spend_vs_budget", "team", "organization"]
    usage_kind = "project"
    list_filter = ["is_active", "team", "organization", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "team__name", "organization__name"]
    readonly_fields = ["spend_vs_budget", "created_at", "updated_at"]
    inlines = [ProjectCredentialInline, ProjectKeyInline]
    fieldsets = [(None, {"fields": ("name", "team", "organization", "is_active", "allowed_models", "metadata",
                                    "log_requests", "memory")}),
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
