"""The JSON each management handler answers, declared (response=) so /docs shows it and its types
are checked; accounts/schemas/render.py builds it. Names and types are LiteLLM's: ids as
strings, money as JSON numbers. A field a builder adds before its schema names it still passes
(extra="allow"), so an answer never loses a field silently.
"""
from __future__ import annotations

from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict


class Out(Schema):
    model_config = ConfigDict(protected_namespaces=(), extra="allow")


class LimitsOut(Out):
    """The budget and rate limits every entity and shared budget answers with."""

    max_budget: float | None
    soft_budget: float | None
    budget_duration: str | None
    budget_reset_at: str | None
    tpm_limit: int | None
    rpm_limit: int | None
    max_parallel_requests: int | None


class BudgetOut(LimitsOut):
    spend: float | None
    budget_id: str | None = None


class KeyOut(BudgetOut):
    token: str
    key_id: int
    key_name: str
    key_alias: str | None
    models: list[str]
    expires: str | None
    user_id: str | None
    team_id: str | None
    organization_id: str | None
    project_id: str | None
    metadata: dict[str, Any]
    blocked: bool
    aliases: dict[str, Any]
    log_requests: bool
    created_at: str | None
    updated_at: str | None
    last_used_at: str | None


class KeyWithSecretOut(KeyOut):
    key: str = Field(description="The plaintext key: in this response only.")
    token_id: str = Field(description="The key's stored token (the same as `token`), as LiteLLM names it here.")


class KeyInfoOut(Out):
    key: str
    info: KeyOut


class KeyListOut(Out):
    keys: list[KeyOut | str]
    total_count: int
    current_page: int
    total_pages: int


class KeyDeleteOut(Out):
    deleted_keys: list[str]
    deleted_tokens: list[str]


class UserOut(BudgetOut):
    user_id: str
    user_email: str | None
    user_role: str
    models: list[str]
    metadata: dict[str, Any]
    is_active: bool
    created_at: str | None
    teams: list[str]


class UserNewOut(UserOut):
    key: str | None = Field(None, description="The first key's plaintext (auto_create_key): in this response only.")
    token: str | None = None
    key_name: str | None = None


class MemberOut(Out):
    user_id: str
    user_email: str | None
    role: str


class TeamOut(BudgetOut):
    team_id: str
    team_alias: str | None
    organization_id: str | None
    models: list[str]
    blocked: bool
    metadata: dict[str, Any]
    members_with_roles: list[MemberOut]
    aliases: dict[str, Any]
    log_requests: bool
    created_at: str | None
    updated_at: str | None


class TeamUpdateOut(TeamOut):
    data: TeamOut = Field(description="The team again, where LiteLLM's clients read it.")


class TeamMembershipOut(Out):
    """A person's membership of one team as LiteLLM's /user/info shows it: their spend there and budget."""

    user_id: str
    team_id: str
    spend: float
    budget_id: str | None
    litellm_budget_table: dict[str, Any] | None


class UserTeamOut(TeamOut):
    team_memberships: list[TeamMembershipOut]


class UserInfoOut(Out):
    user_id: str
    user_info: UserOut
    keys: list[KeyOut]
    teams: list[UserTeamOut]


class UserListOut(Out):
    users: list[UserOut]
    total: int
    page: int
    page_size: int
    total_pages: int


class UserDeleteOut(Out):
    deleted_users: list[str]


class TeamInfoOut(Out):
    team_id: str
    team_info: TeamOut
    keys: list[KeyOut]
    team_memberships: list[MemberOut]


class TeamDeleteOut(Out):
    deleted_teams: list[str]


class OrganizationTeamOut(Out):
    team_id: str
    team_alias: str | None


class OrganizationMemberOut(Out):
    user_id: str
    role: str


class BudgetTableOut(LimitsOut):
    """An organization's litellm_budget_table: its limits alone."""


class OrganizationOut(BudgetOut):
    organization_id: str
    organization_alias: str | None
    models: list[str]
    blocked: bool
    metadata: dict[str, Any]
    teams: list[OrganizationTeamOut]
    members: list[OrganizationMemberOut]
    created_at: str | None
    updated_at: str | None
    litellm_budget_table: BudgetTableOut


class ProjectOut(BudgetOut):
    project_id: str
    project_alias: str
    team_id: str | None
    organization_id: str | None
    is_active: bool
    models: list[str]
    metadata: dict[str, Any]
    credentials: dict[str, str]
    created_at: str | None
    updated_at: str | None


class ProjectDeleteOut(Out):
    deleted_projects: list[str]
