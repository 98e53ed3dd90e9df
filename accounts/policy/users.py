"""Who may change a person's account, grant a role, or bring a person into a team or organization.

A person's password, email and role are theirs and the proxy admins' (issue 16.2): a team admin
runs the team (its members, keys and projects), not the accounts of the people in it. A key or a
membership of someone else's is a way of acting as them, so an admin below proxy admin may add to
their scope (or issue a key to) only a person whose every right they already hold themselves:
someone in no team or organization they do not administer, and with no higher role.
"""
from __future__ import annotations

from accounts.models import OrganizationMembership, Role, TeamMembership, User
from accounts.policy.actor import ROLE_RANK, Actor
from accounts.policy.scopes import forbidden
from llmur.core.errors import LlmurError

# What a person may change on their own account; the rest (role, budget, limits, models, flags) is
# a proxy admin's.
SELF_SERVICE_FIELDS = frozenset({"email", "password", "metadata", "first_name", "last_name"})


def covers_user(actor: Actor, user: User) -> bool:
    """Whether every right `user` holds is also the actor's, so acting as them gives the actor nothing new."""
    if actor.is_proxy_admin:
        return True
    if actor.read_only or actor.user is None:
        return False
    if actor.is_user(user):
        return True
    if user.is_proxy_admin or ROLE_RANK.get(user.role, 0) > actor.rank:
        return False
    teams = set(TeamMembership.objects.filter(user=user).values_list("team_id", flat=True))
    orgs = set(OrganizationMembership.objects.filter(user=user).values_list("organization_id", flat=True))
    return teams <= actor.admin_team_ids and orgs <= actor.admin_org_ids


def require_may_add_member(actor: Actor, user: User, *, where: str) -> None:
    """Bringing an existing person into a team or organization (a new membership)."""
    if not covers_user(actor, user):
        raise forbidden(
            f"User {user.username!r} already exists and belongs to teams or organizations you do not administer "
            f"(or holds a higher role): adding them to {where} takes a proxy admin or an admin of all their teams. "
            "To add someone new, use a user_id that is not taken.")


def creates_users_implicitly(actor: Actor) -> bool:
    """Whether an unknown user_id on /key/generate or /user/update creates that user, as LiteLLM does for any
    caller. Only for a proxy admin: below that, people are created explicitly (/user/new) into the teams and
    organizations one administers (require_may_create_user), so an unknown user_id is a 404."""
    return actor.is_proxy_admin


def can_change_user(actor: Actor, user: User) -> bool:
    """Whether the actor may change this person's account at all (the admin's change page, /user/update)."""
    return actor.is_proxy_admin or (not actor.read_only and actor.is_user(user))


def require_may_change_user(actor: Actor, user: User, fields: set[str] | frozenset[str]) -> None:
    if actor.is_proxy_admin:
        return
    if actor.read_only:
        raise forbidden("Your role (viewer) is read-only.")
    if not actor.is_user(user):
        raise forbidden(
            f"Only a proxy admin or {user.username!r} may change their account (password, email, role, budget). "
            "A team admin manages membership (/team/member_add, /team/member_delete) and the team's keys.")
    extra = set(fields) - SELF_SERVICE_FIELDS
    if extra:
        raise forbidden("You may change your own email, password and metadata; your role, budget, limits and "
                        f"models ({', '.join(sorted(extra))}) are a proxy admin's to set.")


def require_grantable_role(actor: Actor, role: str) -> None:
    if role not in ROLE_RANK:
        raise LlmurError(400, "invalid_request_error",
                         f"Unknown user_role {role!r} (expected one of {', '.join(ROLE_RANK)}).",
                         param="user_role", code="400")
    if ROLE_RANK[Role(role)] > actor.rank:
        raise forbidden(f"You cannot grant the role {role}: it is above your own ({actor.role}).")


def require_may_create_user(actor: Actor, *, teams: list, organization) -> None:
    """Below proxy admin, people are created into the teams and organizations one administers."""
    if actor.is_proxy_admin:
        return
    if actor.read_only:
        raise forbidden("Your role (viewer) is read-only.")
    if not teams and organization is None:
        raise forbidden("Team and organization admins create users into what they administer: give teams or "
                        "organization_id.")
    if any(team.pk not in actor.admin_team_ids for team in teams) or (
            organization is not None and organization.pk not in actor.admin_org_ids):
        raise forbidden("You may only add users to teams and organizations you administer.")


# LiteLLM's admin UI sign-in: this user name with a master key as the password (its UI_USERNAME default).
UI_ADMIN_USERNAME = "admin"


def require_ui_admin_account(user: User | None) -> None:
    """The master key signs in to the admin as the `admin` account only, and only while that account is a
    proxy admin (or does not exist yet, and is then created as one): a person who took the name `admin`
    without being a proxy admin is neither promoted nor signed in by someone holding the master key."""
    if user is not None and not (user.is_active and user.is_proxy_admin and user.is_staff):
        raise LlmurError(403, "permission_error", f"The account {UI_ADMIN_USERNAME!r} exists and is no active proxy "
                         "admin: the master key does not sign in as it. Sign in with its own password at /admin/.",
                         code="403")
