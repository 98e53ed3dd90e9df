"""Which organizations, teams, projects and users an actor may read, and which they administer.

Reads follow membership: a member sees their team (and the teams of organizations they belong
to); an admin of a team or organization administers it and what is inside it. Existence is never
disclosed (issue 16.12): an entity the actor may not read is answered with the same 404 as a
missing one; only an entity they can already read may answer 403 "you may read it, not change it".
"""
from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from accounts import selectors
from accounts.models import Organization, OrganizationMembership, Project, Team, TeamMembership, User
from accounts.policy.actor import Actor
from llmur.core.errors import LlmurError


def forbidden(message: str) -> LlmurError:
    return LlmurError(403, "auth_error", message, code="403")


def given(value: Any) -> bool:
    """Whether an optional id was sent (LiteLLM clients send "" and null for "none")."""
    return value not in (None, "")


def require_write(actor: Actor) -> None:
    if actor.read_only:
        raise forbidden("Your role (viewer) is read-only.")


def require_proxy_admin(actor: Actor, what: str) -> None:
    if not actor.is_proxy_admin:
        raise forbidden(f"Only a proxy admin may {what}.")


# --------------------------------------------------------------------------- organizations

def can_manage_org(actor: Actor, org: Organization) -> bool:
    return actor.is_proxy_admin or org.pk in actor.admin_org_ids


def can_read_org(actor: Actor, org: Organization) -> bool:
    return can_manage_org(actor, org) or org.pk in actor.member_org_ids


def visible_organizations(actor: Actor) -> QuerySet[Organization]:
    qs = Organization.objects.all()
    return qs if actor.is_proxy_admin else qs.filter(pk__in=actor.member_org_ids)


def organization_to_read(actor: Actor, organization_id: Any) -> Organization:
    return selectors.organization_get(organization_id=organization_id, queryset=visible_organizations(actor))


def organization_to_manage(actor: Actor, organization_id: Any, *, what: str = "change it") -> Organization:
    org = organization_to_read(actor, organization_id)
    if not can_manage_org(actor, org):
        raise forbidden(f"Only an admin of organization {org.public_id!r} may {what}.")
    return org


# --------------------------------------------------------------------------- teams

def can_manage_team(actor: Actor, team: Team) -> bool:
    """Runs the team: its members, keys and projects (not the team's own budget, see below)."""
    return actor.is_proxy_admin or team.pk in actor.admin_team_ids


def can_read_team(actor: Actor, team: Team) -> bool:
    return can_manage_team(actor, team) or team.pk in actor.member_team_ids or (
        team.organization_id is not None and team.organization_id in actor.member_org_ids)


def can_set_team_limits(actor: Actor, team: Team) -> bool:
    """The team's own budget, limits, models, blocked state and organization are set from above it."""
    return actor.is_proxy_admin or (team.organization_id is not None and team.organization_id in actor.admin_org_ids)


def can_delete_team(actor: Actor, team: Team) -> bool:
    return can_set_team_limits(actor, team)


def can_create_team(actor: Actor, organization: Organization | None) -> bool:
    return actor.is_proxy_admin or (organization is not None and organization.pk in actor.admin_org_ids)


def visible_teams(actor: Actor) -> QuerySet[Team]:
    qs = Team.objects.all()
    if actor.is_proxy_admin:
        return qs
    return qs.filter(Q(pk__in=actor.admin_team_ids | actor.member_team_ids)
                     | Q(organization_id__in=actor.member_org_ids))


def administered_teams(actor: Actor) -> QuerySet[Team]:
    qs = Team.objects.all()
    return qs if actor.is_proxy_admin else qs.filter(pk__in=actor.admin_team_ids)


def administered_organizations(actor: Actor) -> QuerySet[Organization]:
    qs = Organization.objects.all()
    return qs if actor.is_proxy_admin else qs.filter(pk__in=actor.admin_org_ids)


def team_to_read(actor: Actor, team_id: Any) -> Team:
    return selectors.team_get(team_id=team_id, queryset=visible_teams(actor))


def team_to_manage(actor: Actor, team_id: Any, *, what: str = "change it") -> Team:
    team = team_to_read(actor, team_id)
    if not can_manage_team(actor, team):
        raise forbidden(f"Only an admin of team {team.public_id!r} may {what}.")
    return team


# --------------------------------------------------------------------------- projects

def can_manage_project(actor: Actor, project: Project) -> bool:
    if actor.is_proxy_admin:
        return True
    if project.team_id and project.team_id in actor.admin_team_ids:
        return True
    return bool(project.organization_id and project.organization_id in actor.admin_org_ids)


def can_read_project(actor: Actor, project: Project) -> bool:
    return can_manage_project(actor, project) or (project.team_id in actor.member_team_ids) or (
        project.organization_id is not None and project.organization_id in actor.member_org_ids)


def visible_projects(actor: Actor) -> QuerySet[Project]:
    qs = Project.objects.all()
    if actor.is_proxy_admin:
        return qs
    return qs.filter(Q(team_id__in=actor.admin_team_ids | actor.member_team_ids)
                     | Q(organization_id__in=actor.member_org_ids))


def administered_projects(actor: Actor) -> QuerySet[Project]:
    qs = Project.objects.all()
    if actor.is_proxy_admin:
        return qs
    return qs.filter(Q(team_id__in=actor.admin_team_ids) | Q(organization_id__in=actor.admin_org_ids))


def project_to_read(actor: Actor, project_id: Any) -> Project:
    return selectors.project_get(project_id=project_id, queryset=visible_projects(actor))


def project_to_manage(actor: Actor, project_id: Any, *, what: str = "change it") -> Project:
    project = project_to_read(actor, project_id)
    if not can_manage_project(actor, project):
        raise forbidden(f"Only an admin of project {project.pk}'s team or organization may {what}.")
    return project


def can_create_project(actor: Actor, *, team: Team | None, organization: Organization | None) -> bool:
    if actor.is_proxy_admin:
        return True
    if team is None and organization is None:
        return False
    return (team is None or can_manage_team(actor, team)) and (
        organization is None or can_manage_org(actor, organization))


# --------------------------------------------------------------------------- users (reading)

def visible_users(actor: Actor) -> QuerySet[User]:
    """Oneself, and the members of the teams and organizations one administers."""
    qs = User.objects.all()
    if actor.is_proxy_admin:
        return qs
    own = Q(pk=actor.user.pk) if actor.user else Q(pk__in=[])
    return qs.filter(own | Q(team_memberships__team_id__in=actor.admin_team_ids)
                     | Q(organization_memberships__organization_id__in=actor.admin_org_ids)).distinct()


def user_to_read(actor: Actor, *, user_id: str | None = None, user_email: str | None = None) -> User:
    return selectors.user_get(user_id=user_id, user_email=user_email, queryset=visible_users(actor))


def is_member_of_team(user: User, team: Team) -> bool:
    return TeamMembership.objects.filter(user=user, team=team).exists()


def is_member_of_org(user: User, org: Organization) -> bool:
    return OrganizationMembership.objects.filter(user=user, organization=org).exists()


# --------------------------------------------------------------------------- changing a team or organization itself

# What the admins of a team or organization may change on the entity itself; its budget, limits,
# models, aliases, request log and blocked state are set from above it.
SELF_EDITABLE_FIELDS = frozenset({"name", "metadata"})


def require_may_change_team(actor: Actor, team: Team, fields: dict[str, Any]) -> None:
    """`fields` as team_update takes them; a team moves only into an organization the actor administers."""
    if can_set_team_limits(actor, team):
        target = fields.get("organization", team.organization)
        if "organization" in fields and not actor.is_proxy_admin and (
                target is None or target.pk not in actor.admin_org_ids):
            raise forbidden("A team moves only into an organization you administer; taking it out of every "
                            "organization takes a proxy admin.")
        return
    if not can_manage_team(actor, team):
        raise forbidden(f"Only an admin of team {team.public_id!r} may change it.")
    extra = set(fields) - SELF_EDITABLE_FIELDS
    if extra:
        raise forbidden("A team admin cannot change the team's own budget, limits, models, aliases, request log or "
                        f"blocked state ({', '.join(sorted(extra))}); ask an organization or proxy admin.")


def require_may_change_organization(actor: Actor, org: Organization, fields: dict[str, Any]) -> None:
    if actor.is_proxy_admin:
        return
    if not can_manage_org(actor, org):
        raise forbidden(f"Only an admin of organization {org.public_id!r} may change it.")
    extra = set(fields) - SELF_EDITABLE_FIELDS
    if extra:
        raise forbidden("An organization admin cannot change the organization's own budget, limits, models or "
                        f"blocked state ({', '.join(sorted(extra))}); ask a proxy admin.")
