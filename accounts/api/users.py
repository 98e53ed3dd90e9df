"""/user/*: create, read, change, delete and list people."""
from __future__ import annotations

from accounts import policy, selectors, services
from accounts import schemas as s
from accounts.api.common import actor_of, budget_sent, fields_sent, router
from accounts.models import TeamMembership


@router.post("/user/new", response=s.UserNewOut, exclude_unset=True)
def user_new(request, body: s.UserNewIn):
    """Without user_id, one is generated (a UUID), as LiteLLM does."""
    actor = actor_of(request)
    policy.require_write(actor)
    team_ids = [*body.teams, *([body.team_id] if policy.given(body.team_id) else [])]
    teams = list({team.pk: team for team in (policy.team_to_read(actor, t) for t in team_ids)}.values())
    org = policy.organization_to_read(actor, body.organization_id) if policy.given(body.organization_id) else None
    first_key = ({"key_alias": body.key_alias or "", "expires_at": services.parse_expiry(duration=body.duration)}
                 if body.auto_create_key else None)
    user, key, plaintext = services.user_onboard(
        by=actor, username=body.user_id or services.user_id_new(), email=body.user_email or "",
        role=body.user_role or "internal_user", models=body.models, metadata=body.metadata, password=body.password,
        teams=teams, organization=org, key=first_key, **budget_sent(body))
    out = s.user_out(user)
    if key is not None:
        out.update({"key": plaintext, "token": key.key_hash, "key_name": key.display})
    else:
        out["key"] = None
    return out


@router.get("/user/info", response=s.UserInfoOut)
def user_info(request, user_id: str | None = None):
    actor = actor_of(request)
    if user_id:
        user = policy.user_to_read(actor, user_id=user_id)
    elif actor.user is not None:
        user = actor.user
    else:
        raise services.invalid("Give ?user_id= (the master key is no user).", "user_id")
    keys = policy.visible_keys(actor).filter(user=user).select_related("user", "team", "organization")
    memberships = TeamMembership.objects.filter(user=user).select_related("team", "team__organization", "user")
    teams = [{**s.team_out(m.team), "team_memberships": [s.team_membership_out(m)]} for m in memberships]
    return {"user_id": user.username, "user_info": s.user_out(user), "keys": [s.key_out(k) for k in keys],
            "teams": teams}


@router.post("/user/update", response=s.UserOut)
def user_update(request, body: s.UserUpdateIn):
    """An unknown user_id is created when a proxy admin asks (as LiteLLM does); for anyone else it is a 404."""
    actor = actor_of(request)
    policy.require_write(actor)
    fields = fields_sent(body, "models", "metadata")
    if body.user_role:
        fields["role"] = body.user_role
    if body.password:
        fields["password"] = body.password
    if body.user_id and body.user_email and "user_email" in body.model_fields_set:
        fields["email"] = body.user_email
    if body.user_id:
        return s.user_out(services.user_update_or_create(by=actor, user_id=body.user_id, **fields))
    user = policy.user_to_read(actor, user_email=body.user_email) if body.user_email else actor.user
    if user is None:
        raise services.invalid("Give user_id.", "user_id")
    return s.user_out(services.user_update(by=actor, user=user, **fields))


@router.post("/user/delete", response=s.UserDeleteOut)
def user_delete(request, body: s.UserDeleteIn):
    actor = actor_of(request)
    policy.require_proxy_admin(actor, "delete users")
    users = [selectors.user_get(user_id=u) for u in body.user_ids]
    services.user_delete_many(by=actor, users=users)
    return {"deleted_users": body.user_ids}


@router.get("/user/list", response=s.UserListOut)
def user_list(request, page: int = 1, page_size: int = 25, role: str | None = None):
    actor = actor_of(request)
    qs = policy.visible_users(actor).order_by("username")
    if role:
        qs = qs.filter(role=role)
    users, total, pages = selectors.page(qs, page=page, size=page_size)
    return {"users": [s.user_out(u) for u in users], "total": total, "page": page, "page_size": page_size,
            "total_pages": pages}
