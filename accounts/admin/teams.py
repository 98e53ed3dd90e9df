"""Teams: members, projects and keys on the team page."""
from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction

from accounts import policy, services
from accounts.admin.base import (
    BUDGET_FIELDSET,
    LIMIT_FORM_FIELDS,
    LimitsWithinParentsForm,
    PolicyInline,
    RoleScopedAdmin,
    _ReadOnlyInline,
    _service_fields,
)
from accounts.display import key_status
from accounts.models import Project, Team, TeamMembership, VirtualKey


class TeamMembershipInline(PolicyInline):
    model = TeamMembership
    # The member's budget in the team is set through /team/member_update (max_budget_in_team); shown here.
    readonly_fields = ["max_budget", "spend"]

    def may_change_parent(self, actor, parent):
        return policy.can_manage_team(actor, parent)


class TeamKeyInline(_ReadOnlyInline):
    """The team's keys, read-only here: keys are created on their own page so the plaintext is shown once."""

    model = VirtualKey
    fk_name = "team"
    fields = ["key_alias", "display", "key_state", "spend_vs_budget", "user", "last_used_at"]
    readonly_fields = fields

    @admin.display(description="status")
    def key_state(self, obj):
        return key_status(blocked=obj.blocked, expires_at=obj.expires_at)
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
    list_display = ["name", "status", "spend_vs_budget", "organization", "member_count", "key_count"]
    usage_kind = "team"
    list_filter = ["blocked", "organization", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "organization__name"]
    readonly_fields = ["status", "spend_vs_budget", "created_at", "updated_at"]
    inlines = [TeamMembershipInline, TeamProjectInline, TeamKeyInline]
    fieldsets = [(None, {"fields": ("name", "status", "organization", "allowed_models", "blocked", "metadata")}),
                 BUDGET_FIELDSET, ("Aliases, request log and memory",
                                                    {"fields": ("aliases", "log_requests", "memory")})]
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
            fields = [*fields, "organization", "allowed_models", "blocked", "aliases", "log_requests", "memory",
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
