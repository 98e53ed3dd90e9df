"""Management API bodies in LiteLLM's field names, and the JSON each entity is shown as.

Unknown fields are ignored rather than refused, as LiteLLM does, so scripts that send options
llmur does not have (send_invite_email, tags, ...) keep working.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict

from accounts.models import Organization, Project, Team, TeamMembership, User, VirtualKey

Money = Decimal | None
Limit = int | None
IdLike = int | str | None


class _In(Schema):
    model_config = ConfigDict(extra="ignore")


class BudgetIn(_In):
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


class KeyRef(_In):
    key: str


class KeyRegenerateIn(_In):
    key: str | None = None
    new_key: str | None = None


class KeyDeleteIn(_In):
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


class UserDeleteIn(_In):
    user_ids: list[str]


class MemberIn(_In):
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


class TeamDeleteIn(_In):
    team_ids: list[int | str]


class TeamMemberAddIn(_In):
    team_id: int | str
    member: MemberIn | list[MemberIn]


class TeamMemberDeleteIn(_In):
    team_id: int | str
    user_id: str | None = None
    user_email: str | None = None


class OrganizationNewIn(SharedBudgetIn):
    organization_id: str | None = Field(None, description="Any string; a UUID is generated when omitted.")
    organization_alias: str | None = Field(None, description="A display name; optional, need not be unique.")
    models: list[str] | None = None
    metadata: dict[str, Any] | None = None


class OrganizationMemberAddIn(_In):
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


class ProjectDeleteIn(_In):
    project_ids: list[int | str]


# --------------------------------------------------------------------------- output schemas
#
# The JSON each handler answers, declared (response=) so /docs shows it and its types are checked;
# the dicts below build it. Names and types are LiteLLM's: ids as strings, money as JSON numbers.
# A field a builder adds before its schema names it still passes (extra="allow"), so an answer
# never loses a field silently.

class Out(Schema):
    model_config = ConfigDict(protected_namespaces=(), extra="allow")


class BudgetOut(Out):
    spend: float | None
    budget_id: str | None = None
    max_budget: float | None
    soft_budget: float | None
    budget_duration: str | None
    budget_reset_at: str | None
    tpm_limit: int | None
    rpm_limit: int | None
    max_parallel_requests: int | None


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


class UserInfoOut(Out):
    user_id: str
    user_info: UserOut
    keys: list[KeyOut]
    teams: list[TeamOut]


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


class BudgetTableOut(Out):
    max_budget: float | None
    soft_budget: float | None
    budget_duration: str | None
    budget_reset_at: str | None
    tpm_limit: int | None
    rpm_limit: int | None
    max_parallel_requests: int | None


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


# --------------------------------------------------------------------------- output

def money(value: Decimal | None) -> float | None:
    """Money as a JSON number, as LiteLLM clients expect; stored and summed as Decimal."""
    return None if value is None else float(value)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def budget_out(entity: Any) -> dict[str, Any]:
    shared = getattr(entity, "budget", None)
    return {
        **({"budget_id": shared.budget_id} if shared is not None else {}),
        "spend": money(entity.spend), "max_budget": money(entity.max_budget), "soft_budget": money(entity.soft_budget),
        "budget_duration": entity.budget_duration or None, "budget_reset_at": _iso(entity.budget_reset_at),
        "tpm_limit": entity.tpm_limit, "rpm_limit": entity.rpm_limit,
        "max_parallel_requests": entity.max_parallel_requests,
    }


def budget_table(entity: Any) -> dict[str, Any]:
    """The budget as LiteLLM nests it (`litellm_budget_table`) on organizations."""
    return {"max_budget": money(entity.max_budget), "soft_budget": money(entity.soft_budget),
            "budget_duration": entity.budget_duration or None, "budget_reset_at": _iso(entity.budget_reset_at),
            "tpm_limit": entity.tpm_limit, "rpm_limit": entity.rpm_limit,
            "max_parallel_requests": entity.max_parallel_requests}


def key_out(key: VirtualKey) -> dict[str, Any]:
    return {
        "token": key.key_hash, "key_id": key.pk, "key_name": key.display, "key_alias": key.key_alias or None,
        "models": list(key.allowed_models or []), **budget_out(key), "expires": _iso(key.expires_at),
        "user_id": key.user.username if key.user_id else None,
        "team_id": key.team.public_id if key.team_id else None,
        "organization_id": key.organization.public_id if key.organization_id else None,
        "project_id": str(key.project_id) if key.project_id else None,
        "metadata": key.metadata or {}, "blocked": key.blocked, "aliases": key.aliases or {},
        "log_requests": key.log_requests, "created_at": _iso(key.created_at),
        "updated_at": _iso(key.updated_at), "last_used_at": _iso(key.last_used_at),
    }


def user_out(user: User) -> dict[str, Any]:
    return {
        "user_id": user.username, "user_email": user.email or None, "user_role": user.role,
        "models": list(user.allowed_models or []), **budget_out(user), "metadata": user.metadata or {},
        "is_active": user.is_active, "created_at": _iso(user.date_joined),
        "teams": list(user.team_memberships.values_list("team__public_id", flat=True)),
    }


def member_out(membership: TeamMembership) -> dict[str, Any]:
    return {"user_id": membership.user.username, "user_email": membership.user.email or None,
            "role": membership.role}


def team_out(team: Team) -> dict[str, Any]:
    memberships = team.memberships.select_related("user")
    return {
        "team_id": team.public_id, "team_alias": team.name or None,
        "organization_id": team.organization.public_id if team.organization_id else None,
        "models": list(team.allowed_models or []), **budget_out(team), "blocked": team.blocked,
        "metadata": team.metadata or {}, "members_with_roles": [member_out(m) for m in memberships],
        "aliases": team.aliases or {}, "log_requests": team.log_requests,
        "created_at": _iso(team.created_at), "updated_at": _iso(team.updated_at),
    }


def organization_out(org: Organization) -> dict[str, Any]:
    return {
        "organization_id": org.public_id, "organization_alias": org.name or None,
        "models": list(org.allowed_models or []),
        **budget_out(org), "blocked": org.blocked, "metadata": org.metadata or {},
        "teams": [{"team_id": t.public_id, "team_alias": t.name or None} for t in org.teams.all()],
        "members": [{"user_id": m.user.username, "role": m.role} for m in org.memberships.select_related("user")],
        "created_at": _iso(org.created_at), "updated_at": _iso(org.updated_at),
        "litellm_budget_table": budget_table(org),
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
        "created_at": _iso(project.created_at), "updated_at": _iso(project.updated_at),
    }
