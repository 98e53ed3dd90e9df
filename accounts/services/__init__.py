"""Writes on organizations, teams, users, projects and virtual keys.

Every function here is keyword-only, takes the acting :class:`~accounts.policy.Actor` as `by`, checks
the limits of the entities above the one it writes ("a key's budget fits in its team's"), saves with
ordinary model saves (so the gateway's post_save/post_delete signals invalidate cached keys on every
worker) and leaves one audit entry in the same transaction.

Whether `by` may make the write is asked of accounts.policy here, on the entity as it would be
saved (a key's final owners and limits, the fields a user update touches), so the management API,
the admin and the commands cannot disagree. Callers still look entities up through the policy
first, so that what an actor may not see answers 404 before anything else.
"""
from accounts.services.budgets import (
    BUDGET_UPDATABLE,
    budget_create,
    budget_delete,
    budget_for_reference,
    budget_reference,
    budget_update,
)
from accounts.services.common import (
    BUDGET_FIELDS,
    PROVIDERS,
    invalid,
    parse_aliases,
    parse_duration,
    parse_expiry,
    parse_limit,
    parse_models,
    parse_money,
)
from accounts.services.end_users import (
    END_USER_UPDATABLE,
    end_user_create,
    end_user_delete_many,
    end_user_update,
    end_users_set_blocked,
)
from accounts.services.keys import (
    KEY_UPDATABLE,
    key_block,
    key_create,
    key_delete,
    key_delete_many,
    key_regenerate,
    key_set_blocked,
    key_unblock,
    key_update,
)
from accounts.services.onboarding import key_issue, user_onboard, user_update_or_create
from accounts.services.organizations import (
    ORGANIZATION_UPDATABLE,
    organization_create,
    organization_delete,
    organization_delete_many,
    organization_member_delete,
    organization_member_set,
    organization_members_set,
    organization_update,
)
from accounts.services.projects import (
    PROJECT_UPDATABLE,
    project_create,
    project_credential_delete,
    project_credential_set,
    project_delete,
    project_delete_many,
    project_update,
)
from accounts.services.teams import (
    TEAM_UPDATABLE,
    team_create,
    team_delete,
    team_delete_many,
    team_member_add,
    team_member_delete,
    team_members_add,
    team_update,
)
from accounts.services.users import (
    USER_UPDATABLE,
    user_create,
    user_delete,
    user_delete_many,
    user_get_or_create,
    user_get_or_create_member,
    user_id_new,
    user_update,
)

__all__ = [
    "BUDGET_FIELDS",
    "BUDGET_UPDATABLE",
    "END_USER_UPDATABLE",
    "KEY_UPDATABLE",
    "ORGANIZATION_UPDATABLE",
    "PROJECT_UPDATABLE",
    "PROVIDERS",
    "TEAM_UPDATABLE",
    "USER_UPDATABLE",
    "budget_create",
    "budget_delete",
    "budget_for_reference",
    "budget_reference",
    "budget_update",
    "end_user_create",
    "end_user_delete_many",
    "end_user_update",
    "end_users_set_blocked",
    "invalid",
    "key_block",
    "key_create",
    "key_delete",
    "key_delete_many",
    "key_issue",
    "key_regenerate",
    "key_set_blocked",
    "key_unblock",
    "key_update",
    "organization_create",
    "organization_delete",
    "organization_delete_many",
    "organization_member_delete",
    "organization_member_set",
    "organization_members_set",
    "organization_update",
    "parse_aliases",
    "parse_duration",
    "parse_expiry",
    "parse_limit",
    "parse_models",
    "parse_money",
    "project_create",
    "project_credential_delete",
    "project_credential_set",
    "project_delete",
    "project_delete_many",
    "project_update",
    "team_create",
    "team_delete",
    "team_delete_many",
    "team_member_add",
    "team_member_delete",
    "team_members_add",
    "team_update",
    "user_create",
    "user_delete",
    "user_delete_many",
    "user_get_or_create",
    "user_get_or_create_member",
    "user_id_new",
    "user_onboard",
    "user_update",
    "user_update_or_create",
]
