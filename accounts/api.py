"""Management API for keys, users, teams, organizations and projects, on LiteLLM's paths and field names.

Handlers are sync (ninja runs them in a worker thread, off the event loop): look entities up through
accounts.policy (404 for what the caller may not see), call one service (which asks the policy
whether the caller may make the write), shape the answer. Callers authenticate with a master key
or with the virtual key of a user who has a role. docs/security.md lists the rules.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.security import HttpBearer

from accounts import policy, selectors, services
from accounts import schemas as s
from accounts.models import Team, VirtualKey
from accounts.policy import Actor, actor_from_key


class ManagementKey(HttpBearer):
    """Authorization: Bearer KEY, or x-api-key: KEY, as LiteLLM accepts both."""

    def __call__(self, request: HttpRequest) -> Actor:
        header = request.headers.get("Authorization", "")
        raw = header[7:] if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "") or header
        return self.authenticate(request, raw)

    def authenticate(self, request: HttpRequest, token: str) -> Actor:
        return actor_from_key(token)


management_auth = ManagementKey()
router = Router(auth=management_auth, tags=["Management"])


def _actor(request: HttpRequest) -> Actor:
    return request.auth  # type: ignore[attr-defined]


def _budget(body: s.BudgetIn) -> dict[str, Any]:
    """Only the budget fields the caller actually sent (so an update never clears what it did not name)."""
    sent = body.model_fields_set
    return {name: getattr(body, name) for name in ("max_budget", "soft_budget", "budget_duration", "tpm_limit",
                                                   "rpm_limit", "max_parallel_requests") if name in sent}


def _sent(body: s.BudgetIn, *names: str) -> dict[str, Any]:
    """The budget fields and the named ones that the caller actually sent, for an `<entity>_update`."""
    sent = body.model_fields_set
    return {**_budget(body), **{name: getattr(body, name) for name in names if name in sent}}


def _members(member: s.MemberIn | list[s.MemberIn], roles: dict[str, str] | None = None) -> list[tuple]:
    members = member if isinstance(member, list) else [member]
    return [(m.user_id, m.user_email, (roles or {}).get(m.role, m.role)) for m in members]


# --------------------------------------------------------------------------- keys

@router.post("/key/generate", response=s.KeyWithSecretOut,
             summary="Issue a key; the plaintext is in this response only.")
def key_generate(request, body: s.KeyGenerateIn):
    actor = _actor(request)
    policy.require_write(actor)
    owners = policy.key_owners(actor, user_id=body.user_id, team_id=body.team_id, project_id=body.project_id,
                               organization_id=body.organization_id)
    key, plaintext = services.key_create(
        by=actor, key_alias=body.key_alias or "", models=body.models, metadata=body.metadata, key=body.key,
        expires_at=services.parse_expiry(expires=body.expires, duration=body.duration),
        blocked=bool(body.blocked), aliases=body.aliases, log_requests=bool(body.log_requests), **owners,
        **_budget(body))
    return {**s.key_out(key), "key": plaintext}


@router.post("/key/update", response=s.KeyOut)
def key_update(request, body: s.KeyUpdateIn):
    actor = _actor(request)
    policy.require_write(actor)
    key = policy.key_to_change(actor, body.key)
    sent = body.model_fields_set
    fields = _sent(body, "key_alias", "models", "metadata", "blocked", "aliases", "log_requests")
    if "expires" in sent or "duration" in sent:
        fields["expires_at"] = services.parse_expiry(expires=body.expires, duration=body.duration)
    if {"team_id", "user_id", "organization_id", "project_id"} & sent:
        owners = policy.key_owners(actor, user_id=body.user_id, team_id=body.team_id, project_id=body.project_id,
                                   organization_id=body.organization_id)
        fields.update({name: owners[name] for name, sent_as in (("user", "user_id"), ("team", "team_id"),
                                                                 ("project", "project_id"),
                                                                 ("organization", "organization_id"))
                       if sent_as in sent})
    return s.key_out(services.key_update(by=actor, key=key, **fields))


@router.post("/key/delete", response=s.KeyDeleteOut)
def key_delete(request, body: s.KeyDeleteIn):
    actor = _actor(request)
    policy.require_write(actor)
    if not body.keys and not body.key_aliases:
        raise services.invalid("Give keys (or key_aliases) to delete.", "keys")
    targets = [policy.key_to_change(actor, raw) for raw in body.keys]
    targets += [policy.key_by_alias_to_change(actor, alias) for alias in body.key_aliases]
    services.key_delete_many(by=actor, keys=targets)
    return {"deleted_keys": body.keys + body.key_aliases, "deleted_tokens": [k.key_hash for k in targets]}


@router.get("/key/info", response=s.KeyInfoOut)
def key_info(request, key: str | None = None):
    actor = _actor(request)
    if key:
        found = policy.key_to_read(actor, key)
    elif actor.key_id is not None:
        found = selectors.key_get(key=VirtualKey.objects.get(pk=actor.key_id).key_hash)
    else:
        raise services.invalid("Give ?key=sk-... (the master key has no key info of its own).", "key")
    return {"key": key or found.key_hash, "info": s.key_out(found)}


class KeyListQuery(Schema):
    page: int = 1
    size: int = 100
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    project_id: str | None = None
    key_alias: str | None = None
    return_full_object: bool = False


@router.get("/key/list", response=s.KeyListOut)
def key_list(request, q: Query[KeyListQuery]):
    actor = _actor(request)
    team = policy.team_to_manage(actor, q.team_id, what="list its keys") if q.team_id else None
    org = policy.organization_to_read(actor, q.organization_id) if q.organization_id else None
    project = policy.project_to_read(actor, q.project_id) if q.project_id else None
    qs = selectors.key_list(queryset=policy.visible_keys(actor), user_id=q.user_id, team=team, organization=org,
                            project=project, key_alias=q.key_alias)
    keys, total, pages = selectors.page(qs, page=q.page, size=q.size)
    return {"keys": [s.key_out(k) if q.return_full_object else k.key_hash for k in keys], "total_count": total,
            "current_page": q.page, "total_pages": pages}


@router.post("/key/block", response=s.KeyOut)
def key_block(request, body: s.KeyRef):
    actor = _actor(request)
    policy.require_write(actor)
    return s.key_out(services.key_block(by=actor, key=policy.key_to_change(actor, body.key)))


@router.post("/key/unblock", response=s.KeyOut)
def key_unblock(request, body: s.KeyRef):
    actor = _actor(request)
    policy.require_write(actor)
    return s.key_out(services.key_unblock(by=actor, key=policy.key_to_change(actor, body.key)))


def _regenerate(request, raw: str | None, new_key: str | None):
    actor = _actor(request)
    policy.require_write(actor)
    if not raw:
        raise services.invalid("Give the key to regenerate.", "key")
    key, plaintext = services.key_regenerate(by=actor, key=policy.key_to_change(actor, raw), new_key=new_key)
    return {**s.key_out(key), "key": plaintext}


@router.post("/key/regenerate", response=s.KeyWithSecretOut,
             summary="New secret for a key; everything else is kept. Plaintext shown once.")
def key_regenerate(request, body: s.KeyRegenerateIn):
    return _regenerate(request, body.key, body.new_key)


@router.post("/key/{key}/regenerate", response=s.KeyWithSecretOut, include_in_schema=False)
def key_regenerate_path(request, key: str, body: s.KeyRegenerateIn | None = None):
    return _regenerate(request, key, body.new_key if body else None)


# --------------------------------------------------------------------------- users

@router.post("/user/new", response=s.UserNewOut, exclude_unset=True)
def user_new(request, body: s.UserNewIn):
    actor = _actor(request)
    policy.require_write(actor)
    teams = [policy.team_to_read(actor, t) for t in body.teams]
    org = policy.organization_to_read(actor, body.organization_id) if policy.given(body.organization_id) else None
    first_key = ({"key_alias": body.key_alias or "", "expires_at": services.parse_expiry(duration=body.duration)}
                 if body.auto_create_key else None)
    user, key, plaintext = services.user_onboard(
        by=actor, username=body.user_id or body.user_email or "", email=body.user_email or "",
        role=body.user_role or "internal_user", models=body.models, metadata=body.metadata, password=body.password,
        teams=teams, organization=org, key=first_key, **_budget(body))
    out = s.user_out(user)
    if key is not None:
        out.update({"key": plaintext, "token": key.key_hash, "key_name": key.display})
    else:
        out["key"] = None
    return out


@router.get("/user/info", response=s.UserInfoOut)
def user_info(request, user_id: str | None = None):
    actor = _actor(request)
    if user_id:
        user = policy.user_to_read(actor, user_id=user_id)
    elif actor.user is not None:
        user = actor.user
    else:
        raise services.invalid("Give ?user_id= (the master key is no user).", "user_id")
    keys = policy.visible_keys(actor).filter(user=user).select_related("user")
    teams = Team.objects.filter(memberships__user=user)
    return {"user_id": user.username, "user_info": s.user_out(user), "keys": [s.key_out(k) for k in keys],
            "teams": [s.team_out(t) for t in teams]}


@router.post("/user/update", response=s.UserOut)
def user_update(request, body: s.UserUpdateIn):
    actor = _actor(request)
    policy.require_write(actor)
    user = (policy.user_to_read(actor, user_id=body.user_id, user_email=body.user_email)
            if body.user_id or body.user_email else actor.user)
    if user is None:
        raise services.invalid("Give user_id.", "user_id")
    fields = _sent(body, "models", "metadata")
    if body.user_role:
        fields["role"] = body.user_role
    if body.password:
        fields["password"] = body.password
    if body.user_id and body.user_email and "user_email" in body.model_fields_set:
        fields["email"] = body.user_email
    return s.user_out(services.user_update(by=actor, user=user, **fields))


@router.post("/user/delete", response=s.UserDeleteOut)
def user_delete(request, body: s.UserDeleteIn):
    actor = _actor(request)
    policy.require_proxy_admin(actor, "delete users")
    users = [selectors.user_get(user_id=u) for u in body.user_ids]
    services.user_delete_many(by=actor, users=users)
    return {"deleted_users": body.user_ids}


@router.get("/user/list", response=s.UserListOut)
def user_list(request, page: int = 1, page_size: int = 25, role: str | None = None):
    actor = _actor(request)
    qs = policy.visible_users(actor).order_by("username")
    if role:
        qs = qs.filter(role=role)
    users, total, pages = selectors.page(qs, page=page, size=page_size)
    return {"users": [s.user_out(u) for u in users], "total": total, "page": page, "page_size": page_size,
            "total_pages": pages}


# --------------------------------------------------------------------------- teams

@router.post("/team/new", response=s.TeamOut)
def team_new(request, body: s.TeamNewIn):
    actor = _actor(request)
    policy.require_write(actor)
    org = policy.organization_to_read(actor, body.organization_id) if policy.given(body.organization_id) else None
    team = services.team_create(by=actor, name=body.team_alias, organization=org, models=body.models,
                                metadata=body.metadata, blocked=body.blocked, aliases=body.aliases,
                                log_requests=bool(body.log_requests), members=_members(body.members_with_roles),
                                **_budget(body))
    return s.team_out(team)


@router.get("/team/info", response=s.TeamInfoOut)
def team_info(request, team_id: str):
    actor = _actor(request)
    team = policy.team_to_read(actor, team_id)
    keys = VirtualKey.objects.filter(team=team).select_related("user")
    if not policy.can_manage_team(actor, team):
        keys = keys.filter(user=actor.user)
    return {"team_id": str(team.pk), "team_info": s.team_out(team), "keys": [s.key_out(k) for k in keys],
            "team_memberships": [s.member_out(m) for m in team.memberships.select_related("user")]}


@router.post("/team/update", response=s.TeamOut)
def team_update(request, body: s.TeamUpdateIn):
    actor = _actor(request)
    policy.require_write(actor)
    team = policy.team_to_manage(actor, body.team_id)
    fields = _sent(body, "models", "metadata", "blocked", "aliases", "log_requests")
    if "team_alias" in body.model_fields_set and body.team_alias:
        fields["name"] = body.team_alias
    return s.team_out(services.team_update(by=actor, team=team, **fields))


@router.post("/team/delete", response=s.TeamDeleteOut)
def team_delete(request, body: s.TeamDeleteIn):
    actor = _actor(request)
    policy.require_write(actor)
    teams = [policy.team_to_read(actor, t) for t in body.team_ids]
    services.team_delete_many(by=actor, teams=teams)
    return {"deleted_teams": [str(t) for t in body.team_ids]}


@router.get("/team/list", response=list[s.TeamOut])
def team_list(request, organization_id: str | None = None):
    actor = _actor(request)
    qs = policy.visible_teams(actor)
    if organization_id:
        qs = qs.filter(organization_id=policy.organization_to_read(actor, organization_id).pk)
    return [s.team_out(t) for t in qs]


@router.post("/team/member_add", response=s.TeamOut)
def team_member_add(request, body: s.TeamMemberAddIn):
    actor = _actor(request)
    policy.require_write(actor)
    team = policy.team_to_manage(actor, body.team_id, what="add members")
    services.team_members_add(by=actor, team=team, members=_members(body.member))
    return s.team_out(team)


@router.post("/team/member_delete", response=s.TeamOut)
def team_member_delete(request, body: s.TeamMemberDeleteIn):
    actor = _actor(request)
    policy.require_write(actor)
    team = policy.team_to_manage(actor, body.team_id, what="remove members")
    user = selectors.user_get(user_id=body.user_id, user_email=body.user_email,
                              queryset=team.members.all())
    services.team_member_delete(by=actor, team=team, user=user)
    return s.team_out(team)


# --------------------------------------------------------------------------- organizations

@router.post("/organization/new", response=s.OrganizationOut)
def organization_new(request, body: s.OrganizationNewIn):
    actor = _actor(request)
    policy.require_proxy_admin(actor, "create organizations")
    org = services.organization_create(by=actor, name=body.organization_alias, models=body.models,
                                       metadata=body.metadata, **_budget(body))
    return s.organization_out(org)


@router.get("/organization/info", response=s.OrganizationOut)
def organization_info(request, organization_id: str):
    return s.organization_out(policy.organization_to_read(_actor(request), organization_id))


@router.get("/organization/list", response=list[s.OrganizationOut])
def organization_list(request):
    return [s.organization_out(o) for o in policy.visible_organizations(_actor(request))]


# LiteLLM's member roles → llmur's organization roles.
ORG_ROLES = {"admin": "org_admin", "user": "member", "internal_user": "member"}


@router.post("/organization/member_add", response=s.OrganizationOut)
def organization_member_add(request, body: s.OrganizationMemberAddIn):
    actor = _actor(request)
    policy.require_write(actor)
    org = policy.organization_to_manage(actor, body.organization_id, what="add members")
    services.organization_members_set(by=actor, organization=org, members=_members(body.member, ORG_ROLES))
    return s.organization_out(org)


# --------------------------------------------------------------------------- projects

@router.post("/project/new", response=s.ProjectOut)
def project_new(request, body: s.ProjectNewIn):
    actor = _actor(request)
    policy.require_write(actor)
    team = policy.team_to_read(actor, body.team_id) if policy.given(body.team_id) else None
    org = policy.organization_to_read(actor, body.organization_id) if policy.given(body.organization_id) else None
    project = services.project_create(by=actor, name=body.project_alias or body.name or "", team=team,
                                      organization=org, models=body.models, metadata=body.metadata,
                                      is_active=body.is_active, credentials=body.credentials, **_budget(body))
    return s.project_out(project)


@router.get("/project/info", response=s.ProjectOut)
def project_info(request, project_id: str):
    return s.project_out(policy.project_to_read(_actor(request), project_id))


@router.post("/project/update", response=s.ProjectOut)
def project_update(request, body: s.ProjectUpdateIn):
    actor = _actor(request)
    policy.require_write(actor)
    project = policy.project_to_manage(actor, body.project_id)
    fields = _sent(body, "models", "metadata", "is_active", "credentials")
    if body.project_alias or body.name:
        fields["name"] = body.project_alias or body.name
    return s.project_out(services.project_update(by=actor, project=project, **fields))


@router.post("/project/delete", response=s.ProjectDeleteOut)
def project_delete(request, body: s.ProjectDeleteIn):
    actor = _actor(request)
    policy.require_write(actor)
    projects = [policy.project_to_manage(actor, p, what="delete it") for p in body.project_ids]
    services.project_delete_many(by=actor, projects=projects)
    return {"deleted_projects": [str(p) for p in body.project_ids]}


@router.get("/project/list", response=list[s.ProjectOut])
def project_list(request, team_id: str | None = None):
    actor = _actor(request)
    qs = policy.visible_projects(actor).prefetch_related("credentials")
    if team_id:
        qs = qs.filter(team_id=policy.team_to_read(actor, team_id).pk)
    return [s.project_out(p) for p in qs]
