"""Who may do what: the one place the management API, the admin and the commands ask.

- actor: who is acting and what they hold (role, teams and organizations as admin or member).
- scopes: which organizations, teams, projects and users an actor reads or administers; 404 for
  what they may not see, alike for missing and hidden (16.12).
- users: changing a person's account (a proxy admin's or their own, 16.2); granting roles; adding
  people to teams and organizations.
- keys: who issues a key for whom, in which scope (16.3); owners only tighten their keys (16.5).
- limits: budgets, limits and allow-lists nest inside the entities above; what loosens a key.
- spend: whose spend an actor sees.
- budgets: end users and shared budgets (proxy admins').
- deployments: model management, what /model/info shows (16.8), env references (16.7).
- memory: whose cross-session memory an actor may list, read and delete.
- device: where an approver may put an agent's key (RFC 8628 sign-in), who sees agent keys.
- admin_permissions: the admin's has_*_permission methods, written once.

docs/security.md explains the rules for operators.
"""
from accounts.policy.actor import ROLE_RANK, Actor, actor_from_key
from accounts.policy.admin_permissions import ProxyAdminEdits, ProxyAdminMayView, ReadOnly, StaffMayView
from accounts.policy.budgets import (
    require_may_manage_budgets,
    require_may_manage_end_users,
    require_may_reference_budget,
)
from accounts.policy.deployments import (
    allowed_env_references,
    allowed_models_of,
    can_manage_models,
    check_env_references,
    models_shown_to,
    require_may_manage_models,
    usable_model_names,
)
from accounts.policy.device import AgentKeyScope, agent_key_scope, agent_key_scopes, visible_agent_sign_ins
from accounts.policy.keys import (
    KeyRights,
    key_by_alias_to_change,
    key_owners,
    key_rights,
    key_to_change,
    key_to_read,
    require_may_change_key,
    require_may_create_key,
    team_keys_shown,
    visible_keys,
    who_may_loosen,
)
from accounts.policy.limits import check_within, key_parents, loosened_fields
from accounts.policy.memory import memory_scope, require_may_forget_end_users
from accounts.policy.scopes import (
    administered_organizations,
    administered_projects,
    administered_teams,
    can_create_project,
    can_create_team,
    can_delete_team,
    can_manage_org,
    can_manage_project,
    can_manage_team,
    can_read_org,
    can_read_project,
    can_read_team,
    can_set_team_limits,
    forbidden,
    given,
    organization_to_manage,
    organization_to_read,
    project_to_manage,
    project_to_read,
    require_may_change_organization,
    require_may_change_team,
    require_proxy_admin,
    require_write,
    team_to_manage,
    team_to_read,
    user_to_read,
    visible_organizations,
    visible_projects,
    visible_teams,
    visible_users,
)
from accounts.policy.spend import spend_scope, spend_scope_id
from accounts.policy.users import (
    UI_ADMIN_USERNAME,
    can_change_user,
    covers_user,
    creates_users_implicitly,
    require_grantable_role,
    require_may_add_member,
    require_may_change_user,
    require_may_create_user,
    require_ui_admin_account,
)

__all__ = [
    "ROLE_RANK",
    "UI_ADMIN_USERNAME",
    "require_ui_admin_account",
    "Actor",
    "AgentKeyScope",
    "KeyRights",
    "ProxyAdminEdits",
    "ProxyAdminMayView",
    "ReadOnly",
    "StaffMayView",
    "actor_from_key",
    "administered_organizations",
    "administered_projects",
    "administered_teams",
    "agent_key_scope",
    "agent_key_scopes",
    "allowed_env_references",
    "allowed_models_of",
    "can_change_user",
    "can_create_project",
    "can_create_team",
    "can_delete_team",
    "can_manage_models",
    "can_manage_org",
    "can_manage_project",
    "can_manage_team",
    "can_read_org",
    "can_read_project",
    "can_read_team",
    "can_set_team_limits",
    "check_env_references",
    "check_within",
    "covers_user",
    "creates_users_implicitly",
    "forbidden",
    "given",
    "key_by_alias_to_change",
    "key_owners",
    "key_parents",
    "key_rights",
    "key_to_change",
    "key_to_read",
    "loosened_fields",
    "memory_scope",
    "models_shown_to",
    "organization_to_manage",
    "organization_to_read",
    "project_to_manage",
    "project_to_read",
    "require_grantable_role",
    "require_may_add_member",
    "require_may_change_key",
    "require_may_change_organization",
    "require_may_change_team",
    "require_may_change_user",
    "require_may_create_key",
    "require_may_create_user",
    "require_may_forget_end_users",
    "require_may_manage_budgets",
    "require_may_manage_end_users",
    "require_may_manage_models",
    "require_may_reference_budget",
    "require_proxy_admin",
    "require_write",
    "spend_scope",
    "spend_scope_id",
    "team_keys_shown",
    "team_to_manage",
    "team_to_read",
    "usable_model_names",
    "user_to_read",
    "visible_agent_sign_ins",
    "visible_keys",
    "visible_organizations",
    "visible_projects",
    "visible_teams",
    "visible_users",
    "who_may_loosen",
]
