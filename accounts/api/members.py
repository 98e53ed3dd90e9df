"""Management API: changing and removing members of teams and organizations, and deleting organizations.

LiteLLM's paths and methods (PATCH /organization/member_update, DELETE /organization/member_delete
and /organization/delete), with POST accepted too. Handlers look entities up through accounts.policy
and call one service, which asks the policy whether the caller may make the write.
"""
from __future__ import annotations

from ninja import Field

from accounts import policy, selectors, services
from accounts import schemas as s
from accounts.api.common import actor_of, router
from accounts.api.organizations import ORG_ROLES
from accounts.models import OrganizationMembership, TeamMembership, User


class TeamMemberUpdateIn(s.In):
    team_id: s.IdLike
    user_id: str | None = None
    user_email: str | None = None
    role: str | None = None
    max_budget_in_team: s.Money = Field(None, ge=0)


class OrganizationMemberIn(s.In):
    organization_id: s.IdLike
    user_id: str | None = None
    user_email: str | None = None


class OrganizationMemberUpdateIn(OrganizationMemberIn):
    role: str | None = None
    max_budget_in_organization: s.Money = Field(None, ge=0)


class OrganizationDeleteIn(s.In):
    organization_ids: list[s.IdLike] = Field(default_factory=list)


class TeamMemberUpdateOut(s.Out):
    team_id: str
    user_id: str
    user_email: str | None
    role: str
    max_budget_in_team: float | None


class OrganizationMembershipOut(s.Out):
    organization_id: str
    user_id: str
    user_email: str | None
    user_role: str


def _no_member_budget(value, param: str) -> None:
    if value is not None:
        raise services.invalid(f"{param}: llmur has no per-member budgets in organizations; give the member's "
                               "keys a max_budget (/key/update), the member a max_budget (/user/update) or a "
                               "team member one (max_budget_in_team on /team/member_update) instead.", param)


def _membership_out(membership: OrganizationMembership) -> dict:
    return {"organization_id": membership.organization.public_id, "user_id": membership.user.username,
            "user_email": membership.user.email or None, "user_role": membership.role}


@router.post("/team/member_update", response=TeamMemberUpdateOut)
def team_member_update(request, body: TeamMemberUpdateIn):
    actor = actor_of(request)
    policy.require_write(actor)
    team = policy.team_to_manage(actor, body.team_id, what="change members")
    user = selectors.user_get(user_id=body.user_id, user_email=body.user_email, queryset=team.members.all())
    role = body.role or TeamMembership.objects.get(team=team, user=user).role
    membership = services.team_member_add(by=actor, team=team, user=user, role=role)
    if body.max_budget_in_team is not None:
        membership = services.team_member_budget_set(by=actor, team=team, user=user,
                                                     max_budget=body.max_budget_in_team)
    return {"team_id": team.public_id, "user_id": user.username, "user_email": user.email or None,
            "role": membership.role,
            "max_budget_in_team": float(membership.max_budget) if membership.max_budget is not None else None}


def _org_member(actor, body: OrganizationMemberIn, what: str):
    org = policy.organization_to_manage(actor, body.organization_id, what=what)
    user = selectors.user_get(user_id=body.user_id, user_email=body.user_email,
                              queryset=User.objects.filter(organization_memberships__organization=org))
    return org, user


@router.api_operation(["PATCH", "POST"], "/organization/member_update", response=OrganizationMembershipOut)
def organization_member_update(request, body: OrganizationMemberUpdateIn):
    actor = actor_of(request)
    policy.require_write(actor)
    org, user = _org_member(actor, body, "change members")
    _no_member_budget(body.max_budget_in_organization, "max_budget_in_organization")
    current = OrganizationMembership.objects.get(organization=org, user=user)
    role = {**ORG_ROLES, "internal_user_viewer": "member"}.get(body.role, body.role) if body.role else current.role
    membership = services.organization_member_set(by=actor, organization=org, user=user, role=role)
    return _membership_out(membership)


@router.api_operation(["DELETE", "POST"], "/organization/member_delete", response=OrganizationMembershipOut)
def organization_member_delete(request, body: OrganizationMemberIn):
    actor = actor_of(request)
    policy.require_write(actor)
    org, user = _org_member(actor, body, "remove members")
    out = _membership_out(OrganizationMembership.objects.select_related("user", "organization").get(organization=org, user=user))
    services.organization_member_delete(by=actor, organization=org, user=user)
    return out


@router.api_operation(["DELETE", "POST"], "/organization/delete", response=list[s.OrganizationOut],
                      summary="Delete organizations that no team or project belongs to any more.")
def organization_delete(request, body: OrganizationDeleteIn):
    actor = actor_of(request)
    policy.require_write(actor)
    if not body.organization_ids:
        raise services.invalid("Give organization_ids: the organizations to delete.", "organization_ids")
    orgs = [policy.organization_to_read(actor, o) for o in body.organization_ids]
    out = [s.organization_out(o) for o in orgs]
    services.organization_delete_many(by=actor, organizations=orgs)
    return out
