"""/key/*: issue, change, block, regenerate, delete, read and list virtual keys."""
from __future__ import annotations

from ninja import Query, Schema

from accounts import policy, selectors, services
from accounts import schemas as s
from accounts.api.common import actor_of, budget_sent, fields_sent, router, self_key_auth
from accounts.models import VirtualKey


@router.post("/key/generate", response=s.KeyWithSecretOut,
             summary="Issue a key; the plaintext is in this response only.")
def key_generate(request, body: s.KeyGenerateIn):
    """An unknown user_id is created when a proxy admin asks (as LiteLLM does); for anyone else it is a 404."""
    actor = actor_of(request)
    policy.require_write(actor)
    budget, limits = services.budget_for_reference(by=actor, budget_id=body.budget_id, limits=budget_sent(body))
    key, plaintext = services.key_issue(
        by=actor, user_id=body.user_id, team_id=body.team_id, project_id=body.project_id,
        organization_id=body.organization_id, key_alias=body.key_alias or "", models=body.models,
        metadata=body.metadata, key=body.key,
        expires_at=services.parse_expiry(expires=body.expires, duration=body.duration),
        blocked=bool(body.blocked), aliases=body.aliases, log_requests=bool(body.log_requests), **limits)
    if budget is not None:
        key = services.budget_reference(by=actor, entity=key, budget=budget)
    return {**s.key_out(key), "key": plaintext, "token_id": key.key_hash}


@router.post("/key/update", response=s.KeyOut)
def key_update(request, body: s.KeyUpdateIn):
    actor = actor_of(request)
    policy.require_write(actor)
    key = policy.key_to_change(actor, body.key)
    sent = body.model_fields_set
    fields = fields_sent(body, "key_alias", "models", "metadata", "blocked", "aliases", "log_requests")
    if "expires" in sent or "duration" in sent:
        fields["expires_at"] = services.parse_expiry(expires=body.expires, duration=body.duration)
    if {"team_id", "user_id", "organization_id", "project_id"} & sent:
        owners = policy.key_owners(actor, user_id=body.user_id, team_id=body.team_id, project_id=body.project_id,
                                   organization_id=body.organization_id)
        fields.update({name: owners[name] for name, sent_as in (("user", "user_id"), ("team", "team_id"),
                                                                 ("project", "project_id"),
                                                                 ("organization", "organization_id"))
                       if sent_as in sent})
    budget, _ = services.budget_for_reference(by=actor, budget_id=body.budget_id, limits=budget_sent(body))
    key = services.key_update(by=actor, key=key, **fields)
    if "budget_id" in sent:
        key = services.budget_reference(by=actor, entity=key, budget=budget)
    return s.key_out(key)


@router.post("/key/delete", response=s.KeyDeleteOut)
def key_delete(request, body: s.KeyDeleteIn):
    actor = actor_of(request)
    policy.require_write(actor)
    if not body.keys and not body.key_aliases:
        raise services.invalid("Give keys (or key_aliases) to delete.", "keys")
    targets = [policy.key_to_change(actor, raw) for raw in body.keys]
    targets += [policy.key_by_alias_to_change(actor, alias) for alias in body.key_aliases]
    services.key_delete_many(by=actor, keys=targets)
    return {"deleted_keys": body.keys + body.key_aliases, "deleted_tokens": [k.key_hash for k in targets]}


@router.get("/key/info", response=s.KeyInfoOut, auth=self_key_auth)
def key_info(request, key: str | None = None):
    """Any key may read about itself, also one that belongs to no user."""
    actor = actor_of(request)
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
    actor = actor_of(request)
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
    actor = actor_of(request)
    policy.require_write(actor)
    return s.key_out(services.key_block(by=actor, key=policy.key_to_change(actor, body.key)))


@router.post("/key/unblock", response=s.KeyOut)
def key_unblock(request, body: s.KeyRef):
    actor = actor_of(request)
    policy.require_write(actor)
    return s.key_out(services.key_unblock(by=actor, key=policy.key_to_change(actor, body.key)))


def _regenerate(request, raw: str | None, new_key: str | None):
    actor = actor_of(request)
    policy.require_write(actor)
    if not raw:
        raise services.invalid("Give the key to regenerate.", "key")
    key, plaintext = services.key_regenerate(by=actor, key=policy.key_to_change(actor, raw), new_key=new_key)
    return {**s.key_out(key), "key": plaintext, "token_id": key.key_hash}


@router.post("/key/regenerate", response=s.KeyWithSecretOut,
             summary="New secret for a key; everything else is kept. Plaintext shown once.")
def key_regenerate(request, body: s.KeyRegenerateIn):
    return _regenerate(request, body.key, body.new_key)


@router.post("/key/{key}/regenerate", response=s.KeyWithSecretOut, include_in_schema=False)
def key_regenerate_path(request, key: str, body: s.KeyRegenerateIn | None = None):
    return _regenerate(request, key, body.new_key if body else None)
