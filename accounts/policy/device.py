"""Agent sign-in (RFC 8628 device flow): where a person may put the key an agent asks for, who sees agent keys.

A key issued by approving an agent is the approver's own key, created exactly as /key/generate
creates one for its caller, so the same rule decides (keys.require_may_create_key): the page only
offers the scopes that rule accepts, and approving asks it again when the key is created.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from accounts.models import DeviceAuthorization, VirtualKey
from accounts.policy.actor import Actor
from accounts.policy.keys import require_may_create_key, visible_keys
from accounts.policy.scopes import forbidden, visible_organizations, visible_projects, visible_teams
from llmur.core.errors import LlmurError

PERSONAL = "personal"


@dataclass(frozen=True)
class AgentKeyScope:
    """One place an approver may put an agent's key: `value` is what the page's form sends back."""

    value: str
    label: str
    owners: dict[str, Any]


def _candidate(actor: Actor, owners: dict[str, Any]) -> VirtualKey:
    """The key as key_create will hold it: a project's key charges its team, a team's its organization."""
    project, team, org = owners.get("project"), owners.get("team"), owners.get("organization")
    if project is not None and team is None and org is None:
        team = project.team
    if team is not None and org is None:
        org = team.organization
    return VirtualKey(user=actor.user, project=project, team=team, organization=org)


def _allowed(actor: Actor, owners: dict[str, Any]) -> bool:
    try:
        require_may_create_key(actor, _candidate(actor, owners))
    except LlmurError:
        return False
    return True


def agent_key_scopes(actor: Actor) -> list[AgentKeyScope]:
    """Every scope the actor may create a key of their own in: personal, their teams, projects, organizations."""
    if actor.user is None or actor.read_only:
        return []
    candidates = [AgentKeyScope(PERSONAL, "Personal (charged to you)", {})]
    for team in visible_teams(actor).select_related("organization").order_by("name"):
        candidates.append(AgentKeyScope(f"team:{team.pk}", f"Team {team.name}", {"team": team}))
    for project in visible_projects(actor).select_related("team", "organization").order_by("name"):
        candidates.append(AgentKeyScope(f"project:{project.pk}", f"Project {project.name}", {"project": project}))
    for org in visible_organizations(actor).order_by("name"):
        candidates.append(AgentKeyScope(f"organization:{org.pk}", f"Organization {org.name}", {"organization": org}))
    return [c for c in candidates if _allowed(actor, c.owners)]


def agent_key_scope(actor: Actor, value: str | None) -> AgentKeyScope:
    """The scope the form named, if the actor may create keys in it (403 otherwise, whatever the value)."""
    for scope in agent_key_scopes(actor):
        if scope.value == (value or PERSONAL):
            return scope
    raise forbidden("You may not create keys there, so you cannot approve this agent into it. Ask an admin of "
                    "a team you belong to, or a proxy admin.")


def visible_agent_sign_ins(actor: Actor) -> QuerySet[DeviceAuthorization]:
    """Agent sign-ins whose key the actor may see (their own, their scopes'), and those they decided."""
    qs = DeviceAuthorization.objects.select_related("key__team", "key__organization", "decided_by")
    if actor.is_proxy_admin:
        return qs
    own = Q(decided_by_id=actor.user.pk) if actor.user else Q(pk__in=[])
    return qs.filter(own | Q(key__in=visible_keys(actor)))
