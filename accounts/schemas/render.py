"""Accounts entities as the management API shows them: the dicts its Out schemas declare."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from accounts.models import Organization, Project, Team, TeamMembership, User, VirtualKey


def money(value: Decimal | None) -> float | None:
    """Money as a JSON number, as LiteLLM clients expect; stored and summed as Decimal."""
    return None if value is None else float(value)


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def limits_out(entity: Any) -> dict[str, Any]:
    """An entity's or shared budget's limits (LimitsOut); alone, LiteLLM's `litellm_budget_table`."""
    return {"max_budget": money(entity.max_budget), "soft_budget": money(entity.soft_budget),
            "budget_duration": entity.budget_duration or None, "budget_reset_at": iso(entity.budget_reset_at),
            "tpm_limit": entity.tpm_limit, "rpm_limit": entity.rpm_limit,
            "max_parallel_requests": entity.max_parallel_requests}


def budget_out(entity: Any) -> dict[str, Any]:
    shared = getattr(entity, "budget", None)
    return {
        **({"budget_id": shared.budget_id} if shared is not None else {}),
        "spend": money(entity.spend), **limits_out(entity),
    }


def key_out(key: VirtualKey) -> dict[str, Any]:
    return {
        "token": key.key_hash, "key_id": key.pk, "key_name": key.display, "key_alias": key.key_alias or None,
        "models": list(key.allowed_models or []), **budget_out(key), "expires": iso(key.expires_at),
        "user_id": key.user.username if key.user_id else None,
        "team_id": key.team.public_id if key.team_id else None,
        "organization_id": key.organization.public_id if key.organization_id else None,
        "project_id": str(key.project_id) if key.project_id else None,
        "metadata": key.metadata or {}, "blocked": key.blocked, "aliases": key.aliases or {},
        "log_requests": key.log_requests, "created_at": iso(key.created_at),
        "updated_at": iso(key.updated_at), "last_used_at": iso(key.last_used_at),
    }


def user_out(user: User) -> dict[str, Any]:
    return {
        "user_id": user.username, "user_email": user.email or None, "user_role": user.role,
        "models": list(user.allowed_models or []), **budget_out(user), "metadata": user.metadata or {},
        "is_active": user.is_active, "created_at": iso(user.date_joined),
        "teams": list(user.team_memberships.values_list("team__public_id", flat=True)),
    }


def member_out(membership: TeamMembership) -> dict[str, Any]:
    return {"user_id": membership.user.username, "user_email": membership.user.email or None,
            "role": membership.role}


def team_membership_out(membership: TeamMembership) -> dict[str, Any]:
    """LiteLLM's team membership row: the member's spend in the team and, when set, their budget there."""
    return {"user_id": membership.user.username, "team_id": membership.team.public_id,
            "spend": money(membership.spend), "budget_id": None,
            "litellm_budget_table": ({"max_budget": money(membership.max_budget)}
                                     if membership.max_budget is not None else None)}


def team_out(team: Team) -> dict[str, Any]:
    memberships = team.memberships.select_related("user")
    return {
        "team_id": team.public_id, "team_alias": team.name or None,
        "organization_id": team.organization.public_id if team.organization_id else None,
        "models": list(team.allowed_models or []), **budget_out(team), "blocked": team.blocked,
        "metadata": team.metadata or {}, "members_with_roles": [member_out(m) for m in memberships],
        "aliases": team.aliases or {}, "log_requests": team.log_requests,
        "created_at": iso(team.created_at), "updated_at": iso(team.updated_at),
    }


def organization_out(org: Organization) -> dict[str, Any]:
    return {
        "organization_id": org.public_id, "organization_alias": org.name or None,
        "models": list(org.allowed_models or []),
        **budget_out(org), "blocked": org.blocked, "metadata": org.metadata or {},
        "teams": [{"team_id": t.public_id, "team_alias": t.name or None} for t in org.teams.all()],
        "members": [{"user_id": m.user.username, "role": m.role} for m in org.memberships.select_related("user")],
        "created_at": iso(org.created_at), "updated_at": iso(org.updated_at),
        "litellm_budget_table": limits_out(org),
    }


def project_out(project: Project) -> dict[str, Any]:
    return {
        "project_id": str(project.pk), "project_alias": project.name,
        "team_id": project.team.public_id if project.team_id else None,
        "organization_id": project.organization.public_id if project.organization_id else None,
        "is_active": project.is_active, "models": list(project.allowed_models or []), **budget_out(project),
        "metadata": project.metadata or {},
        # Which providers have a key, and its last characters for recognition; never the key.
        "credentials": {c.provider: c.display for c in project.credentials.all()},
        "created_at": iso(project.created_at), "updated_at": iso(project.updated_at),
    }
