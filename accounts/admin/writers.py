"""The services behind child rows (memberships, credentials), for inlines and their own pages."""
from __future__ import annotations

from typing import Any

from django import forms

from accounts import services
from accounts.models import OrganizationMembership, ProjectCredential, TeamMembership, User
from accounts.policy import Actor


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
