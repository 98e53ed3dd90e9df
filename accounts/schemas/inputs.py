"""Management API bodies in LiteLLM's field names.

Unknown fields are ignored rather than refused, as LiteLLM does, so scripts that send options
llmur does not have (send_invite_email, tags, ...) keep working.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict

Money = Decimal | None
Limit = int | None
IdLike = int | str | None


class In(Schema):
    model_config = ConfigDict(extra="ignore")


class BudgetIn(In):
    max_budget: Money = Field(None, ge=0)
    soft_budget: Money = Field(None, ge=0)
    budget_duration: str | None = None
    tpm_limit: Limit = Field(None, ge=0)
    rpm_limit: Limit = Field(None, ge=0)
    max_parallel_requests: Limit = Field(None, ge=0)


class SharedBudgetIn(BudgetIn):
    budget_id: str | None = Field(None, description="A shared budget (/budget/new) whose limits this takes.")


class KeyGenerateIn(SharedBudgetIn):
    key_alias: str | None = None
    key: str | None = Field(None, description="A custom key (sk-..., 20+ characters); generated when omitted.")
    models: list[str] | None = None
    duration: str | None = Field(None, description="Lifetime from now: 30s, 30m, 1h, 1d, 30d.")
    expires: dt.datetime | None = Field(None, description="Absolute expiry (alternative to duration).")
    metadata: dict[str, Any] | None = None
    user_id: str | None = None
    team_id: IdLike = None
    organization_id: IdLike = None
    project_id: IdLike = None
    blocked: bool | None = None
    aliases: dict[str, str] | None = Field(None, description='Model aliases for this key, e.g. {"fast": "gpt-4o"}.')
    log_requests: bool | None = Field(None, description="Store this key's prompts and answers (redacted).")


class KeyUpdateIn(KeyGenerateIn):
    key: str = Field(..., description="The key (sk-...) or its token.")


class KeyRef(In):
    key: str


class KeyRegenerateIn(In):
    key: str | None = None
    new_key: str | None = None


class KeyDeleteIn(In):
    keys: list[str] = Field(default_factory=list)
    key_aliases: list[str] = Field(default_factory=list)


class UserNewIn(BudgetIn):
    user_id: str | None = None
    user_email: str | None = None
    user_alias: str | None = None
    user_role: str | None = None
    password: str | None = None
    teams: list[IdLike] = Field(default_factory=list)
    team_id: IdLike = Field(None, description="One team to join (LiteLLM's field; `teams` takes several).")
    organization_id: IdLike = None
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None
    auto_create_key: bool = True
    key_alias: str | None = None
    duration: str | None = None


class UserUpdateIn(BudgetIn):
    user_id: str | None = None
    user_email: str | None = None
    user_role: str | None = None
    password: str | None = None
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None


class UserDeleteIn(In):
    user_ids: list[str]


class MemberIn(In):
    role: str = "user"
    user_id: str | None = None
    user_email: str | None = None


class TeamNewIn(SharedBudgetIn):
    team_id: str | None = Field(None, description="The team's id, any string; a UUID is generated when omitted.")
    team_alias: str | None = Field(None, description="A display name; optional, need not be unique.")
    organization_id: IdLike = None
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None
    blocked: bool = False
    members_with_roles: list[MemberIn] = Field(default_factory=list)
    aliases: dict[str, str] | None = Field(None, description="Model aliases for the team's keys.")
    model_aliases: dict[str, str] | None = Field(None, description="LiteLLM's name for `aliases`.")
    log_requests: bool | None = Field(None, description="Store the prompts and answers (redacted) of the team's keys.")


class TeamUpdateIn(SharedBudgetIn):
    team_id: int | str
    team_alias: str | None = None
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None
    blocked: bool | None = None
    aliases: dict[str, str] | None = None
    log_requests: bool | None = None


class TeamDeleteIn(In):
    team_ids: list[int | str]


class TeamMemberAddIn(In):
    team_id: int | str
    member: MemberIn | list[MemberIn]
    max_budget_in_team: Money = Field(None, ge=0, description="Each added member's budget in this team.")


class TeamMemberDeleteIn(In):
    team_id: int | str
    user_id: str | None = None
    user_email: str | None = None


class OrganizationNewIn(SharedBudgetIn):
    organization_id: str | None = Field(None, description="Any string; a UUID is generated when omitted.")
    organization_alias: str | None = Field(None, description="A display name; optional, need not be unique.")
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None


class OrganizationMemberAddIn(In):
    organization_id: int | str
    member: MemberIn | list[MemberIn]


class ProjectNewIn(BudgetIn):
    project_alias: str | None = Field(None, description="The project's name (also accepted as `name`).")
    name: str | None = None
    team_id: IdLike = None
    organization_id: IdLike = None
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None
    is_active: bool = True
    credentials: dict[str, str] | None = Field(
        None, description='Provider API keys for this project, e.g. {"openai": "sk-..."}: stored encrypted, '
                          "never returned.")


class ProjectUpdateIn(BudgetIn):
    project_id: int | str
    project_alias: str | None = None
    name: str | None = None
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None
    is_active: bool | None = None
    credentials: dict[str, str | None] | None = Field(
        None, description="Set or replace a provider key; null removes it. Never returned.")


class ProjectDeleteIn(In):
    project_ids: list[int | str]
