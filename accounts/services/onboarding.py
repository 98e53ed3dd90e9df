"""/user/new, /key/generate and /user/update as LiteLLM callers use them: a person, their memberships and keys,
each request in one transaction."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts import policy
from accounts.models import Organization, Team, User, VirtualKey
from accounts.policy import Actor
from accounts.services.keys import key_create
from accounts.services.organizations import organization_member_set
from accounts.services.teams import team_member_add
from accounts.services.users import user_create, user_get_or_create, user_update


@transaction.atomic
def user_onboard(*, by: Actor, username: str, teams: list[Team], organization: Organization | None = None,
                 key: dict[str, Any] | None = None, **fields: Any) -> tuple[User, VirtualKey | None, str | None]:
    """/user/new in one transaction: the user, their memberships and, when `key` is given, their first key.

    The key goes where the user was put (the first team, else the organization), so it is charged
    there and bounded by its limits; only a user put nowhere gets a personal key (issue 16.3).
    """
    policy.require_may_create_user(by, teams=teams, organization=organization)
    user = user_create(by=by, username=username, **fields)
    for team in teams:
        team_member_add(by=by, team=team, user=user)
    if organization is not None:
        organization_member_set(by=by, organization=organization, user=user, role="member")
    if key is None:
        return user, None, None
    scope = {"team": teams[0]} if teams else {"organization": organization} if organization is not None else {}
    created, plaintext = key_create(by=by, user=user, **scope, **key)
    return user, created, plaintext


@transaction.atomic
def key_issue(*, by: Actor, user_id: str | None = None, team_id: Any = None, project_id: Any = None,
              organization_id: Any = None, **fields: Any) -> tuple[VirtualKey, str]:
    """/key/generate: the owners named (looked up within what `by` may see), then key_create.

    An unknown user_id is created first when the policy lets `by` create users implicitly (a proxy
    admin, as LiteLLM does); for anyone else it stays a 404.
    """
    if user_id and policy.creates_users_implicitly(by):
        user_get_or_create(by=by, user_id=user_id)
    owners = policy.key_owners(by, user_id=user_id, team_id=team_id, project_id=project_id,
                               organization_id=organization_id)
    return key_create(by=by, **owners, **fields)


@transaction.atomic
def user_update_or_create(*, by: Actor, user_id: str, **fields: Any) -> User:
    """/user/update on a user_id nobody has yet: created first when `by` may create users implicitly."""
    if policy.creates_users_implicitly(by):
        user_get_or_create(by=by, user_id=user_id)
    return user_update(by=by, user=policy.user_to_read(by, user_id=user_id), **fields)
