"""Writes on teams and their memberships."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from django.db import transaction

from accounts import policy
from accounts.audit import audit_record, snapshot
from accounts.models import Organization, Team, TeamMembership, User, VirtualKey
from accounts.policy import Actor
from accounts.services.common import (
    BUDGET_FIELDS,
    apply_budget,
    apply_common_fields,
    budget_values,
    delete_audited,
    invalid,
    locked_for_update,
    membership_set,
    parse_aliases,
    parse_memory,
    parse_models,
    parse_public_id,
    save_created,
    save_update,
)
from accounts.services.keys import delete_with_keys
from accounts.services.users import user_get_or_create_member


@transaction.atomic
def team_create(*, by: Actor, name: str | None = "", team_id: str | None = None,
                organization: Organization | None = None, models: Any = None, metadata: dict | None = None,
                blocked: bool = False, aliases: Any = None, log_requests: bool = False, memory: Any = None,
                members: list[tuple[str | None, str | None, str]] = (), **budget: Any) -> Team:
    """A team, with its first members as (user_id, user_email, role), in one transaction.

    `team_id` is the public id the client chose (a UUID is generated when omitted); the alias
    (`name`) is optional and may repeat.
    """
    if not policy.can_create_team(by, organization):
        raise policy.forbidden("Only a proxy admin, or an organization admin inside their organization, may create "
                               "teams.")
    public_id = parse_public_id(team_id, param="team_id")
    if public_id is not None and Team.objects.filter(public_id=public_id).exists():
        raise invalid(f"A team with team_id {public_id!r} already exists.", "team_id")
    team = Team(name=(name or "").strip(), organization=organization, allowed_models=parse_models(models),
                metadata=metadata or {}, blocked=blocked, aliases=parse_aliases(aliases),
                log_requests=bool(log_requests), memory=parse_memory(memory))
    if public_id is not None:
        team.public_id = public_id
    apply_budget(team, budget_values(budget))
    policy.check_within(team, [organization], what="team")
    save_created(by=by, instance=team)
    team_members_add(by=by, team=team, members=members)
    return team


TEAM_UPDATABLE = {"name", "models", "metadata", "blocked", "organization", "aliases", "log_requests", "memory",
                  *BUDGET_FIELDS}


@transaction.atomic
def team_update(*, by: Actor, team: Team, **fields: Any) -> Team:
    policy.require_may_change_team(by, team, fields)
    team, before = locked_for_update(team, fields, updatable=TEAM_UPDATABLE, what="team")
    if fields.get("name"):
        team.name = fields["name"].strip()
    if "blocked" in fields:
        team.blocked = bool(fields["blocked"])
    if "organization" in fields:
        team.organization = fields["organization"]
    apply_common_fields(team, fields)
    policy.check_within(team, [team.organization], what="team")
    save_update(by=by, instance=team, before=before)
    return team


@transaction.atomic
def team_delete(*, by: Actor, team: Team) -> None:
    """Deletes the team with its keys; refuses while projects still belong to it."""
    if not policy.can_delete_team(by, team):
        raise policy.forbidden(f"Only an organization or proxy admin may delete team {team.public_id!r}.")
    if team.projects.exists():
        raise invalid(f"Team {team.name!r} still has projects; delete or move them first.", "team_id")
    delete_with_keys(by=by, instance=team, keys=VirtualKey.objects.filter(team=team))


@transaction.atomic
def team_delete_many(*, by: Actor, teams: Iterable[Team]) -> None:
    for team in teams:
        team_delete(by=by, team=team)


@transaction.atomic
def team_member_add(*, by: Actor, team: Team, user: User, role: str = TeamMembership.TeamRole.MEMBER
                    ) -> TeamMembership:
    """Adds the person to the team or changes their role in it; a new membership follows
    policy.require_may_add_member (no pulling in people from teams one does not run, issue 16.2)."""
    if role not in TeamMembership.TeamRole.values:
        raise invalid(f"Unknown team member role {role!r} (expected admin or user).", "member.role")
    if not policy.can_manage_team(by, team):
        raise policy.forbidden(f"Only an admin of team {team.public_id!r} may add members.")
    return membership_set(by=by, model=TeamMembership, role=role, place=f"team {team.name!r}", team=team, user=user)


@transaction.atomic
def team_member_budget_set(*, by: Actor, team: Team, user: User, max_budget: Any) -> TeamMembership:
    """Sets a member's budget in the team (LiteLLM's max_budget_in_team); an admin of the team, as for members.

    Enforced at admission per (team, member) beside the key's, user's and team's budgets; the member's
    spend there counts what their keys of this team spent from now on.
    """
    if not policy.can_manage_team(by, team):
        raise policy.forbidden(f"Only an admin of team {team.public_id!r} may set members' budgets.")
    membership = TeamMembership.objects.select_for_update().filter(team=team, user=user).first()
    if membership is None:
        raise invalid(f"{user.username!r} is not a member of team {team.public_id!r}.", "user_id")
    try:
        value = Decimal(str(max_budget))
    except (InvalidOperation, ValueError):
        raise invalid("max_budget_in_team must be a number of US dollars.", "max_budget_in_team") from None
    if not value.is_finite() or value < 0:
        raise invalid("max_budget_in_team must be 0 or more.", "max_budget_in_team")
    if membership.max_budget == value:
        return membership
    before = snapshot(membership)
    membership.max_budget = value
    membership.save(update_fields=["max_budget"])
    audit_record(by=by, action="update", instance=membership, before=before, after=snapshot(membership))
    return membership


@transaction.atomic
def team_members_add(*, by: Actor, team: Team, members: Iterable[tuple[str | None, str | None, str]],
                     new_only: bool = False, max_budget: Any = None) -> None:
    """/team/member_add and /team/new's members: (user_id, user_email, role) each, all or none.

    `new_only`: someone already in the team is a 400 (LiteLLM's /team/member_add), not a role change.
    """
    for user_id, user_email, role in members:
        user = user_get_or_create_member(by=by, user_id=user_id, user_email=user_email)
        if new_only and TeamMembership.objects.filter(team=team, user=user).exists():
            raise invalid(f"{user.username!r} is already a member of team {team.public_id!r}.", "member.user_id")
        team_member_add(by=by, team=team, user=user, role=role)
        if max_budget is not None:
            team_member_budget_set(by=by, team=team, user=user, max_budget=max_budget)


@transaction.atomic
def team_member_delete(*, by: Actor, team: Team, user: User) -> None:
    if not policy.can_manage_team(by, team):
        raise policy.forbidden(f"Only an admin of team {team.public_id!r} may remove members.")
    membership = TeamMembership.objects.filter(team=team, user=user).first()
    if membership is None:
        raise invalid(f"{user.username!r} is not a member of team {team.public_id!r}.", "user_id")
    delete_audited(by=by, instance=membership)
