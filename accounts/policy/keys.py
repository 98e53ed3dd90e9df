"""Who may see, issue and change a virtual key, for whom, in which scope (issues 16.3 and 16.5).

A key's scope is the most specific owner it has: its project, else its team, else its
organization; a key with none is personal. Rights over a key, from most to least:

- ADMIN: a proxy admin, or an admin of the key's scope. Changes anything within the scope's limits.
- OWNER: the person the key belongs to. May tighten it (lower a budget or limit, remove models,
  block it, shorten its life), rename it, regenerate or delete it; never loosen or unblock it.
- READ: a viewer's own key.

Below proxy admin, every key issued falls inside a scope the issuer administers, or is the issuer's
own (personal, or in a team or project they belong to); a key for someone else goes to a member of
a scope the issuer administers, and only when the issuer already holds every right that person
has (a key acts as its user on the management API). The limits of the entities above a key bound
it in every case (accounts.policy.limits.check_within).
"""
from __future__ import annotations

import enum
from typing import Any

from django.db.models import Q, QuerySet

from accounts import selectors
from accounts.models import OrganizationMembership, Team, TeamMembership, User, VirtualKey
from accounts.policy.actor import Actor
from accounts.policy.limits import loosened_fields
from accounts.policy.scopes import (
    can_manage_project,
    can_manage_team,
    can_read_project,
    forbidden,
    given,
    organization_to_read,
    project_to_read,
    team_to_read,
    user_to_read,
)
from accounts.policy.users import covers_user
from llmur.core.errors import LlmurError


class KeyRights(enum.IntEnum):
    NONE = 0
    READ = 1
    OWNER = 2
    ADMIN = 3


def _scope_admin(actor: Actor, key: VirtualKey) -> bool:
    """Proxy admin, or admin of the key's team, project or organization (never of a personal key)."""
    if actor.is_proxy_admin:
        return True
    if actor.read_only:
        return False
    if key.team_id and key.team_id in actor.admin_team_ids:
        return True
    if key.organization_id and key.organization_id in actor.admin_org_ids:
        return True
    return bool(key.project_id and key.project is not None and can_manage_project(actor, key.project))


def key_rights(actor: Actor, key: VirtualKey) -> KeyRights:
    if _scope_admin(actor, key):
        return KeyRights.ADMIN
    if actor.is_user(key.user):
        return KeyRights.READ if actor.read_only else KeyRights.OWNER
    return KeyRights.NONE


def visible_keys(actor: Actor) -> QuerySet[VirtualKey]:
    """One's own keys and the keys of the scopes one administers."""
    qs = VirtualKey.objects.all()
    if actor.is_proxy_admin:
        return qs
    if actor.user is not None:
        own = Q(user_id=actor.user.pk)
    else:  # a key with no user sees itself
        own = Q(pk=actor.key_id) if actor.key_id is not None else Q(pk__in=[])
    if actor.read_only:
        return qs.filter(own)
    return qs.filter(own | Q(team_id__in=actor.admin_team_ids) | Q(organization_id__in=actor.admin_org_ids)
                     | Q(project__team_id__in=actor.admin_team_ids)
                     | Q(project__organization_id__in=actor.admin_org_ids))


def team_keys_shown(actor: Actor, team: Team) -> QuerySet[VirtualKey]:
    """/team/info's keys: all of them to who runs the team, else one's own (a key with no user: itself)."""
    qs = VirtualKey.objects.filter(team=team).select_related("user", "team", "organization")
    if can_manage_team(actor, team):
        return qs
    return qs.filter(user=actor.user) if actor.user is not None else qs.filter(pk=actor.key_id)


def key_to_read(actor: Actor, raw: str) -> VirtualKey:
    return selectors.key_get(key=raw, queryset=visible_keys(actor))


def _changeable(actor: Actor, key: VirtualKey) -> VirtualKey:
    if key_rights(actor, key) < KeyRights.OWNER:
        raise forbidden("Your role (viewer) is read-only." if actor.read_only
                        else "You may read this key but not change it.")
    return key


def key_to_change(actor: Actor, raw: str) -> VirtualKey:
    """A key the actor owns or administers (404 when they may not see it, 403 when they may only read it)."""
    return _changeable(actor, key_to_read(actor, raw))


def key_by_alias_to_change(actor: Actor, alias: str) -> VirtualKey:
    return _changeable(actor, selectors.key_get_by_alias(alias=alias, queryset=visible_keys(actor)))


# --------------------------------------------------------------------------- scope

def scope_of(key: VirtualKey) -> tuple[str, Any] | None:
    """(kind, entity) of the key's most specific owner, or None for a personal key."""
    if key.project_id:
        return "project", key.project
    if key.team_id:
        return "team", key.team
    if key.organization_id:
        return "organization", key.organization
    return None


def who_may_loosen(key: VirtualKey) -> str:
    scope = scope_of(key)
    if scope is None:
        return "a proxy admin (it is a personal key)"
    kind, entity = scope
    if kind == "project":
        return f"an admin of project {entity.name!r}'s team or organization"
    return f"an admin of {kind} {entity.name!r}"


def _belongs_to_scope(user: User, key: VirtualKey) -> bool:
    teams = {t for t in (key.team_id, key.project.team_id if key.project_id and key.project else None) if t}
    orgs = {o for o in (key.organization_id, key.project.organization_id if key.project_id and key.project else None)
            if o}
    return (TeamMembership.objects.filter(user=user, team_id__in=teams).exists()
            or OrganizationMembership.objects.filter(user=user, organization_id__in=orgs).exists())


def _default_scope(actor: Actor, user: User) -> dict[str, Any]:
    """Where a key the actor issues to someone else goes when no scope was named: the one team (else
    organization) the actor administers that the person belongs to."""
    teams = list(Team.objects.filter(pk__in=actor.admin_team_ids, memberships__user=user).order_by("pk"))
    if len(teams) == 1:
        return {"team": teams[0]}
    if not teams:
        orgs = list(OrganizationMembership.objects.filter(user=user, organization_id__in=actor.admin_org_ids)
                    .select_related("organization"))
        if len(orgs) == 1:
            return {"organization": orgs[0].organization}
        if not orgs:
            raise forbidden(f"You may issue keys only to yourself or to members of a team you administer; "
                            f"{user.username!r} is in none. Add them with /team/member_add first.")
    raise LlmurError(400, "invalid_request_error",
                     f"{user.username!r} belongs to several teams you administer "
                     f"({', '.join(str(t.pk) for t in teams)}): give team_id to say which the key charges.",
                     param="team_id", code="400")


def key_owners(actor: Actor, *, user_id: Any = None, team_id: Any = None, project_id: Any = None,
               organization_id: Any = None) -> dict[str, Any]:
    """The owners a key request names, resolved within what the actor may see (404 otherwise), with defaults.

    Without a user, the key is the caller's own, unless they named a scope they administer (then it
    is that scope's key with no user). A key for someone else with no scope goes to the team the
    caller administers that the person belongs to. Whether the result may be issued at all is
    require_may_create_key's, which services.key_create asks.
    """
    team = team_to_read(actor, team_id) if given(team_id) else None
    project = project_to_read(actor, project_id) if given(project_id) else None
    org = organization_to_read(actor, organization_id) if given(organization_id) else None
    if actor.is_proxy_admin:
        user = selectors.user_get(user_id=user_id) if user_id else None
        return {"user": user, "team": team, "project": project, "organization": org}
    user = user_to_read(actor, user_id=user_id) if user_id else None
    scoped = team is not None or project is not None or org is not None
    if user is None:
        candidate = VirtualKey(team=team, project=project, organization=org)
        if not scoped or not _scope_admin(actor, candidate):
            user = actor.user
    elif not scoped and not actor.is_user(user):
        return {"user": user, "team": None, "project": None, "organization": None, **_default_scope(actor, user)}
    return {"user": user, "team": team, "project": project, "organization": org}


def require_may_create_key(actor: Actor, key: VirtualKey) -> None:
    """The key (owners resolved, not saved) is one the actor may issue; 403 saying what to do otherwise."""
    if actor.is_proxy_admin:
        return
    if actor.read_only:
        raise forbidden("Your role (viewer) is read-only.")
    scope = scope_of(key)
    administers = scope is not None and _scope_admin(actor, key)
    if key.user_id is None:
        if not administers:
            raise forbidden("A key with no user belongs to its team, project or organization: only their admins "
                            "issue one. Give user_id (yourself) or a team_id you administer.")
        return
    if actor.is_user(key.user):
        if scope is None or administers:
            return
        kind, entity = scope
        if kind == "project" and can_read_project(actor, entity):
            return
        if kind == "team" and entity.pk in actor.member_team_ids:
            return
        raise forbidden(f"Only an admin of {kind} {entity.pk} may issue keys owned by it.")
    if scope is None:
        raise forbidden("A key you issue to someone else goes in a team you administer: give its team_id "
                        "(personal keys of other people are a proxy admin's to issue).")
    kind, entity = scope
    if not administers:
        raise forbidden(f"Only an admin of {kind} {entity.pk} may issue its keys to other people.")
    if not _belongs_to_scope(key.user, key):
        raise forbidden(f"{key.user.username!r} is not a member of {kind} {entity.pk}: add them first "
                        "(/team/member_add).")
    if not covers_user(actor, key.user):
        raise forbidden(f"A key acts as its user, and {key.user.username!r} holds rights you do not (other teams, "
                        "organizations or a higher role): only a proxy admin or an admin of all their teams may "
                        "issue them a key.")


def require_may_change_key(actor: Actor, before: VirtualKey, after: VirtualKey) -> None:
    """The change from `before` to `after` is one the actor may make (owners tighten, admins of the scope decide)."""
    rights = key_rights(actor, before)
    if rights == KeyRights.ADMIN:
        moved = any(getattr(before, f"{n}_id") != getattr(after, f"{n}_id")
                    for n in ("user", "team", "project", "organization"))
        if moved and not actor.is_proxy_admin:
            if not _scope_admin(actor, after):
                raise forbidden("You may move a key only between teams, projects and organizations you administer; "
                                "making it personal or moving it elsewhere takes a proxy admin.")
            require_may_create_key(actor, after)
        return
    if rights == KeyRights.OWNER:
        loosened = loosened_fields(before, after)
        if loosened:
            raise forbidden(f"You may only tighten your own key (lower a budget or limit, remove models, block it); "
                            f"{', '.join(loosened)} would loosen it, which takes {who_may_loosen(before)}.")
        return
    raise forbidden("Your role (viewer) is read-only." if actor.read_only
                    else "You may read this key but not change it.")
