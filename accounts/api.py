"""Management API for keys, users, teams, organizations and projects, on LiteLLM's paths and field names.

Handlers are sync (ninja runs them in a worker thread, off the event loop): authorize through the
Actor, call one service or selector, shape the answer. Callers authenticate with a master key or
with the virtual key of a user who has a role.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.security import HttpBearer

from accounts import schemas as s
from accounts import selectors, services
from accounts.models import Project, Team, User, VirtualKey
from accounts.roles import Actor, actor_from_key, forbidden


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


# --------------------------------------------------------------------------- keys

def _key_owners(actor: Actor, body: s.KeyGenerateIn) -> dict[str, Any]:
    """Resolve and authorize the owners named in a key request; a plain user's key is their own."""
    team = selectors.team_get(team_id=body.team_id) if body.team_id not in (None, "") else None
    project = selectors.project_get(project_id=body.project_id) if body.project_id not in (None, "") else None
    org = (selectors.organization_get(organization_id=body.organization_id)
           if body.organization_id not in (None, "") else None)
    user = selectors.user_get(user_id=body.user_id) if body.user_id else None
    if actor.is_proxy_admin:
        return {"team": team, "project": project, "organization": org, "user": user}
    me = actor.user
    if user is not None and user.pk != me.pk and not actor.can_manage_user(user):
        raise forbidden("You may only issue keys to yourself or to members of a team you administer.")
    if team is not None and not actor.can_manage_team(team):
        if team.pk not in actor.member_team_ids:
            raise forbidden(f"You are not a member of team {team.pk}.")
        user = user or me
        if user.pk != me.pk:
            raise forbidden(f"Only an admin of team {team.pk} may issue its keys to other people.")
    if project is not None and not actor.can_manage_project(project):
        if not actor.can_read_project(project):
            raise forbidden(f"You have no access to project {project.pk}.")
        user = user or me
        if user.pk != me.pk:
            raise forbidden(f"Only an admin of project {project.pk} may issue its keys to other people.")
    if org is not None and not actor.can_manage_org(org):
        raise forbidden(f"Only an admin of organization {org.pk} may issue keys owned by it.")
    if team is None and project is None and org is None and user is None:
        user = me
    return {"team": team, "project": project, "organization": org, "user": user}


@router.post("/key/generate", summary="Issue a key; the plaintext is in this response only.")
def key_generate(request, body: s.KeyGenerateIn):
    actor = _actor(request)
    actor.require_write()
    owners = _key_owners(actor, body)
    key, plaintext = services.key_create(
        by=actor, key_alias=body.key_alias or "", models=body.models, metadata=body.metadata, key=body.key,
        expires_at=services.parse_expiry(expires=body.expires, duration=body.duration),
        blocked=bool(body.blocked), aliases=body.aliases, log_requests=bool(body.log_requests), **owners,
        **_budget(body))
    return {**s.key_out(key), "key": plaintext}


def _managed_key(actor: Actor, raw: str) -> VirtualKey:
    key = selectors.key_get(key=raw, queryset=actor.keys())
    if not actor.can_manage_key(key):
        raise forbidden("You may read this key but not change it.")
    return key


@router.post("/key/update")
def key_update(request, body: s.KeyUpdateIn):
    actor = _actor(request)
    actor.require_write()
    key = _managed_key(actor, body.key)
    sent = body.model_fields_set
    fields = _sent(body, "key_alias", "models", "metadata", "blocked", "aliases", "log_requests")
    if "expires" in sent or "duration" in sent:
        fields["expires_at"] = services.parse_expiry(expires=body.expires, duration=body.duration)
    moves = {"team_id", "user_id", "organization_id", "project_id"} & sent
    if moves:
        actor.require_proxy_admin("move a key to another owner")
        fields.update(_key_owners(actor, body))
    return s.key_out(services.key_update(by=actor, key=key, **fields))


@router.post("/key/delete")
def key_delete(request, body: s.KeyDeleteIn):
    actor = _actor(request)
    actor.require_write()
    if not body.keys and not body.key_aliases:
        raise services.invalid("Give keys (or key_aliases) to delete.", "keys")
    targets = [_managed_key(actor, raw) for raw in body.keys]
    for alias in body.key_aliases:
        key = selectors.key_get_by_alias(alias=alias, queryset=actor.keys())
        if not actor.can_manage_key(key):
            raise forbidden("You may read this key but not delete it.")
        targets.append(key)
    deleted = []
    for key in targets:
        deleted.append(key.key_hash)
        services.key_delete(by=actor, key=key)
    return {"deleted_keys": body.keys + body.key_aliases, "deleted_tokens": deleted}


@router.get("/key/info")
def key_info(request, key: str | None = None):
    actor = _actor(request)
    if key:
        found = selectors.key_get(key=key, queryset=actor.keys())
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


@router.get("/key/list")
def key_list(request, q: Query[KeyListQuery]):
    actor = _actor(request)
    if q.team_id and not actor.is_proxy_admin:
        team = selectors.team_get(team_id=q.team_id, queryset=actor.teams())
        if not actor.can_manage_team(team):
            raise forbidden(f"Only an admin of team {team.pk} may list its keys.")
    qs = selectors.key_list(queryset=actor.keys(), user_id=q.user_id, team_id=q.team_id,
                            organization_id=q.organization_id, project_id=q.project_id, key_alias=q.key_alias)
    keys, total, pages = selectors.page(qs, page=q.page, size=q.size)
    return {"keys": [s.key_out(k) if q.return_full_object else k.key_hash for k in keys], "total_count": total,
            "current_page": q.page, "total_pages": pages}


@router.post("/key/block")
def key_block(request, body: s.KeyRef):
    actor = _actor(request)
    actor.require_write()
    return s.key_out(services.key_block(by=actor, key=_managed_key(actor, body.key)))


@router.post("/key/unblock")
def key_unblock(request, body: s.KeyRef):
    actor = _actor(request)
    actor.require_write()
    return s.key_out(services.key_unblock(by=actor, key=_managed_key(actor, body.key)))


def _regenerate(request, raw: str | None, new_key: str | None):
    actor = _actor(request)
    actor.require_write()
    if not raw:
        raise services.invalid("Give the key to regenerate.", "key")
    key, plaintext = services.key_regenerate(by=actor, key=_managed_key(actor, raw), new_key=new_key)
    return {**s.key_out(key), "key": plaintext}


@router.post("/key/regenerate", summary="New secret for a key; everything else is kept. Plaintext shown once.")
def key_regenerate(request, body: s.KeyRegenerateIn):
    return _regenerate(request, body.key, body.new_key)


@router.post("/key/{key}/regenerate", include_in_schema=False)
def key_regenerate_path(request, key: str, body: s.KeyRegenerateIn | None = None):
    return _regenerate(request, key, body.new_key if body else None)


# --------------------------------------------------------------------------- users

@router.post("/user/new")
def user_new(request, body: s.UserNewIn):
    actor = _actor(request)
    actor.require_write()
    role = body.user_role or "internal_user"
    actor.require_grantable_role(role)
    teams = [selectors.team_get(team_id=t) for t in body.teams]
    org = (selectors.organization_get(organization_id=body.organization_id)
           if body.organization_id not in (None, "") else None)
    if not actor.is_proxy_admin:
        if not teams and org is None:
            raise forbidden("Team and organization admins create users into what they administer: give teams "
                            "or organization_id.")
        if any(not actor.can_manage_team(t) for t in teams) or (org is not None and not actor.can_manage_org(org)):
            raise forbidden("You may only add users to teams and organizations you administer.")
        if _budget(body) or body.models:
            raise forbidden("Only a proxy admin may set a user's own budget, limits or models.")
    username = body.user_id or body.user_email or ""
    user = services.user_create(by=actor, username=username, email=body.user_email or "", role=role,
                                models=body.models, metadata=body.metadata, password=body.password, **_budget(body))
    for team in teams:
        services.team_member_add(by=actor, team=team, user=user)
    if org is not None:
        services.organization_member_set(by=actor, organization=org, user=user, role="member")
    out = s.user_out(user)
    if body.auto_create_key:
        key, plaintext = services.key_create(
            by=actor, user=user, key_alias=body.key_alias or "",
            expires_at=services.parse_expiry(duration=body.duration))
        out.update({"key": plaintext, "token": key.key_hash, "key_name": key.display})
    else:
        out["key"] = None
    return out


@router.get("/user/info")
def user_info(request, user_id: str | None = None):
    actor = _actor(request)
    if user_id:
        user = selectors.user_get(user_id=user_id, queryset=actor.users())
    elif actor.user is not None:
        user = actor.user
    else:
        raise services.invalid("Give ?user_id= (the master key is no user).", "user_id")
    keys = actor.keys().filter(user=user).select_related("user")
    teams = Team.objects.filter(memberships__user=user)
    return {"user_id": user.username, "user_info": s.user_out(user), "keys": [s.key_out(k) for k in keys],
            "teams": [s.team_out(t) for t in teams]}


@router.post("/user/update")
def user_update(request, body: s.UserUpdateIn):
    actor = _actor(request)
    actor.require_write()
    user = (selectors.user_get(user_id=body.user_id, user_email=body.user_email, queryset=actor.users())
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
    own = actor.user is not None and user.pk == actor.user.pk
    if not actor.is_proxy_admin:
        if (fields.keys() - {"email", "password", "metadata", "role"}) or (own and "role" in fields):
            raise forbidden("Only a proxy admin may change a user's budget, limits, models or their own role.")
        if not own and not actor.can_manage_user(user):
            raise forbidden("You may only change users in teams or organizations you administer.")
        if "role" in fields:
            actor.require_grantable_role(fields["role"])
    return s.user_out(services.user_update(by=actor, user=user, **fields))


@router.post("/user/delete")
def user_delete(request, body: s.UserDeleteIn):
    actor = _actor(request)
    actor.require_proxy_admin("delete users")
    users = [selectors.user_get(user_id=u) for u in body.user_ids]
    for user in users:
        services.user_delete(by=actor, user=user)
    return {"deleted_users": body.user_ids}


@router.get("/user/list")
def user_list(request, page: int = 1, page_size: int = 25, role: str | None = None):
    actor = _actor(request)
    qs = actor.users().order_by("username")
    if role:
        qs = qs.filter(role=role)
    users, total, pages = selectors.page(qs, page=page, size=page_size)
    return {"users": [s.user_out(u) for u in users], "total": total, "page": page, "page_size": page_size,
            "total_pages": pages}


# --------------------------------------------------------------------------- teams

def _member_user(actor: Actor, member: s.MemberIn) -> User:
    """The member's user; as LiteLLM does, one that does not exist yet is created as an internal user."""
    found = User.objects.filter(username=member.user_id).first() if member.user_id else None
    if found is None and member.user_email:
        found = User.objects.filter(email__iexact=member.user_email).first()
    if found is not None:
        return found
    if not (member.user_id or member.user_email):
        raise services.invalid("member needs user_id or user_email.", "member.user_id")
    return services.user_create(by=actor, username=member.user_id or member.user_email,
                                email=member.user_email or "")


@router.post("/team/new")
def team_new(request, body: s.TeamNewIn):
    actor = _actor(request)
    actor.require_write()
    org = (selectors.organization_get(organization_id=body.organization_id)
           if body.organization_id not in (None, "") else None)
    if not actor.is_proxy_admin and (org is None or not actor.can_manage_org(org)):
        raise forbidden("Only a proxy admin, or an organization admin inside their organization, may create teams.")
    team = services.team_create(by=actor, name=body.team_alias, organization=org, models=body.models,
                                metadata=body.metadata, blocked=body.blocked, aliases=body.aliases,
                                log_requests=bool(body.log_requests), **_budget(body))
    for member in body.members_with_roles:
        services.team_member_add(by=actor, team=team, user=_member_user(actor, member), role=member.role)
    return s.team_out(team)


def _readable_team(actor: Actor, team_id: Any) -> Team:
    return selectors.team_get(team_id=team_id, queryset=actor.teams())


def _managed_team(actor: Actor, team_id: Any) -> Team:
    team = _readable_team(actor, team_id)
    if not actor.can_manage_team(team):
        raise forbidden(f"Only an admin of team {team.pk} may change it.")
    return team


@router.get("/team/info")
def team_info(request, team_id: str):
    actor = _actor(request)
    team = _readable_team(actor, team_id)
    keys = VirtualKey.objects.filter(team=team).select_related("user")
    if not actor.can_manage_team(team):
        keys = keys.filter(user=actor.user)
    return {"team_id": str(team.pk), "team_info": s.team_out(team), "keys": [s.key_out(k) for k in keys],
            "team_memberships": [s.member_out(m) for m in team.memberships.select_related("user")]}


@router.post("/team/update")
def team_update(request, body: s.TeamUpdateIn):
    actor = _actor(request)
    actor.require_write()
    team = _managed_team(actor, body.team_id)
    fields = _sent(body, "models", "metadata", "blocked", "aliases", "log_requests")
    if "team_alias" in body.model_fields_set and body.team_alias:
        fields["name"] = body.team_alias
    above = actor.is_proxy_admin or (team.organization_id is not None and team.organization_id in actor.admin_org_ids)
    if not above and fields.keys() - {"name", "metadata"}:
        raise forbidden("A team admin cannot change the team's own budget, limits, models or blocked state; "
                        "ask an organization or proxy admin.")
    return s.team_out(services.team_update(by=actor, team=team, **fields))


@router.post("/team/delete")
def team_delete(request, body: s.TeamDeleteIn):
    actor = _actor(request)
    actor.require_write()
    teams = [_readable_team(actor, t) for t in body.team_ids]
    for team in teams:
        if not (actor.is_proxy_admin or team.organization_id in actor.admin_org_ids):
            raise forbidden(f"Only an organization or proxy admin may delete team {team.pk}.")
    for team in teams:
        services.team_delete(by=actor, team=team)
    return {"deleted_teams": [str(t) for t in body.team_ids]}


@router.get("/team/list")
def team_list(request, organization_id: str | None = None):
    actor = _actor(request)
    qs = actor.teams()
    if organization_id:
        qs = qs.filter(organization_id=selectors.organization_get(organization_id=organization_id).pk)
    return [s.team_out(t) for t in qs]


@router.post("/team/member_add")
def team_member_add(request, body: s.TeamMemberAddIn):
    actor = _actor(request)
    actor.require_write()
    team = _managed_team(actor, body.team_id)
    members = body.member if isinstance(body.member, list) else [body.member]
    for member in members:
        services.team_member_add(by=actor, team=team, user=_member_user(actor, member), role=member.role)
    return s.team_out(team)


@router.post("/team/member_delete")
def team_member_delete(request, body: s.TeamMemberDeleteIn):
    actor = _actor(request)
    actor.require_write()
    team = _managed_team(actor, body.team_id)
    user = selectors.user_get(user_id=body.user_id, user_email=body.user_email)
    services.team_member_delete(by=actor, team=team, user=user)
    return s.team_out(team)


# --------------------------------------------------------------------------- organizations

@router.post("/organization/new")
def organization_new(request, body: s.OrganizationNewIn):
    actor = _actor(request)
    actor.require_proxy_admin("create organizations")
    org = services.organization_create(by=actor, name=body.organization_alias, models=body.models,
                                       metadata=body.metadata, **_budget(body))
    return s.organization_out(org)


@router.get("/organization/info")
def organization_info(request, organization_id: str):
    actor = _actor(request)
    return s.organization_out(selectors.organization_get(organization_id=organization_id,
                                                         queryset=actor.organizations()))


@router.get("/organization/list")
def organization_list(request):
    return [s.organization_out(o) for o in _actor(request).organizations()]


@router.post("/organization/member_add")
def organization_member_add(request, body: s.OrganizationMemberAddIn):
    actor = _actor(request)
    actor.require_write()
    org = selectors.organization_get(organization_id=body.organization_id, queryset=actor.organizations())
    if not actor.can_manage_org(org):
        raise forbidden(f"Only an admin of organization {org.pk} may add members.")
    for member in body.member if isinstance(body.member, list) else [body.member]:
        role = {"admin": "org_admin", "user": "member", "internal_user": "member"}.get(member.role, member.role)
        services.organization_member_set(by=actor, organization=org, user=_member_user(actor, member), role=role)
    return s.organization_out(org)


# --------------------------------------------------------------------------- projects

def _readable_project(actor: Actor, project_id: Any) -> Project:
    return selectors.project_get(project_id=project_id, queryset=actor.projects())


def _managed_project(actor: Actor, project_id: Any) -> Project:
    project = _readable_project(actor, project_id)
    if not actor.can_manage_project(project):
        raise forbidden(f"Only an admin of project {project.pk}'s team or organization may change it.")
    return project


@router.post("/project/new")
def project_new(request, body: s.ProjectNewIn):
    actor = _actor(request)
    actor.require_write()
    team = selectors.team_get(team_id=body.team_id) if body.team_id not in (None, "") else None
    org = (selectors.organization_get(organization_id=body.organization_id)
           if body.organization_id not in (None, "") else None)
    if not actor.is_proxy_admin:
        if team is not None and not actor.can_manage_team(team):
            raise forbidden(f"Only an admin of team {team.pk} may create its projects.")
        if org is not None and not actor.can_manage_org(org):
            raise forbidden(f"Only an admin of organization {org.pk} may create its projects.")
        if team is None and org is None:
            raise forbidden("Give the team_id or organization_id you administer.")
    project = services.project_create(by=actor, name=body.project_alias or body.name or "", team=team,
                                      organization=org, models=body.models, metadata=body.metadata,
                                      is_active=body.is_active, credentials=body.credentials, **_budget(body))
    return s.project_out(project)


@router.get("/project/info")
def project_info(request, project_id: str):
    return s.project_out(_readable_project(_actor(request), project_id))


@router.post("/project/update")
def project_update(request, body: s.ProjectUpdateIn):
    actor = _actor(request)
    actor.require_write()
    project = _managed_project(actor, body.project_id)
    fields = _sent(body, "models", "metadata", "is_active", "credentials")
    if body.project_alias or body.name:
        fields["name"] = body.project_alias or body.name
    return s.project_out(services.project_update(by=actor, project=project, **fields))


@router.post("/project/delete")
def project_delete(request, body: s.ProjectDeleteIn):
    actor = _actor(request)
    actor.require_write()
    projects = [_managed_project(actor, p) for p in body.project_ids]
    for project in projects:
        services.project_delete(by=actor, project=project)
    return {"deleted_projects": [str(p) for p in body.project_ids]}


@router.get("/project/list")
def project_list(request, team_id: str | None = None):
    actor = _actor(request)
    qs = actor.projects().prefetch_related("credentials")
    if team_id:
        qs = qs.filter(team_id=selectors.team_get(team_id=team_id).pk)
    return [s.project_out(p) for p in qs]

