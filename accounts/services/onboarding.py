"""/user/new: a person, their memberships and their first key, in one transaction."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts import policy
from accounts.models import Organization, Team, User, VirtualKey
from accounts.policy import Actor
from accounts.services.keys import key_create
from accounts.services.organizations import organization_member_set
from accounts.services.teams import team_member_add
from accounts.services.users import user_create


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
