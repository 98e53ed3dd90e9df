"""Organizations and their members."""
from __future__ import annotations

from django.contrib import admin

from accounts import policy, services
from accounts.admin.base import BUDGET_FIELDSET, LIMIT_FORM_FIELDS, PolicyInline, RoleScopedAdmin, _service_fields
from accounts.models import Organization, OrganizationMembership


class OrganizationMembershipInline(PolicyInline):
    model = OrganizationMembership

    def may_change_parent(self, actor, parent):
        return policy.can_manage_org(actor, parent)


@admin.register(Organization)
class OrganizationAdmin(RoleScopedAdmin):
    list_display = ["name", "status", "spend_vs_budget", "team_count"]
    list_filter = ["blocked", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name"]
    readonly_fields = ["status", "spend_vs_budget", "created_at", "updated_at"]
    inlines = [OrganizationMembershipInline]
    fieldsets = [(None, {"fields": ("name", "status", "allowed_models", "blocked", "metadata")}), BUDGET_FIELDSET]

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
