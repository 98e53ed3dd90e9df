"""Memberships and project credentials on pages of their own, changed through their parent's rights."""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet

from accounts import policy
from accounts.admin.base import RoleScopedAdmin
from accounts.admin.forms import ProjectCredentialForm
from accounts.admin.writers import CHILD_WRITERS
from accounts.models import OrganizationMembership, ProjectCredential, TeamMembership
from accounts.policy import Actor


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
    # The member's budget in the team is set through /team/member_update (max_budget_in_team); shown here.
    readonly_fields = ["max_budget", "spend"]

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
