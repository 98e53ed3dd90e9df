"""Management API for end users, on LiteLLM's paths: /customer/* and the older /end_user/* alike.

Proxy admins only (accounts.policy.budgets). An end user is whoever a request names in its `user`
field; blocking one or giving it limits applies to every key's requests that name it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from accounts import policy, selectors, services
from accounts.api.common import actor_of, budget_sent, router
from accounts.models import EndUser
from accounts.schemas import budgets as s


def _route(method: str, path: str, **options: Any) -> Callable:
    """Registers a handler at /customer{path} and at /end_user{path} (LiteLLM's older name for the same)."""
    def register(handler: Callable) -> Callable:
        for prefix in ("/customer", "/end_user"):
            router.api_operation([method], prefix + path, operation_id=f"{prefix[1:]}_{handler.__name__}",
                                 **options)(handler)
        return handler
    return register


def _budget_of(body: s.EndUserNewIn) -> Any:
    return selectors.budget_get(budget_id=body.budget_id) if policy.given(body.budget_id) else None


@_route("POST", "/new", response=s.EndUserOut)
def end_user_new(request, body: s.EndUserNewIn):
    actor = actor_of(request)
    policy.require_may_manage_end_users(actor)
    end_user = services.end_user_create(
        by=actor, user_id=body.user_id or "", alias=body.alias or "", blocked=body.blocked, budget=_budget_of(body),
        allowed_model_region=body.allowed_model_region, default_model=body.default_model, metadata=body.metadata,
        **budget_sent(body))
    return s.end_user_out(end_user)


@_route("GET", "/info", response=s.EndUserOut)
def end_user_info(request, end_user_id: str):
    policy.require_may_manage_end_users(actor_of(request))
    return s.end_user_out(selectors.end_user_get(user_id=end_user_id))


@_route("POST", "/update", response=s.EndUserOut)
def end_user_update(request, body: s.EndUserUpdateIn):
    actor = actor_of(request)
    policy.require_may_manage_end_users(actor)
    end_user = selectors.end_user_get(user_id=body.user_id)
    sent = body.model_fields_set
    fields = {**budget_sent(body), **{name: getattr(body, name) for name in (
        "alias", "blocked", "allowed_model_region", "default_model", "metadata") if name in sent}}
    if fields.get("blocked") is None:
        fields.pop("blocked", None)
    if "budget_id" in sent:
        fields["budget"] = _budget_of(body)
    return s.end_user_out(services.end_user_update(by=actor, end_user=end_user, **fields))


@_route("POST", "/delete", response=s.EndUserDeleteOut)
def end_user_delete(request, body: s.EndUserIdsIn):
    actor = actor_of(request)
    policy.require_may_manage_end_users(actor)
    if not body.user_ids:
        raise services.invalid("Give user_ids: the end users to delete.", "user_ids")
    found = {e.user_id: e for e in EndUser.objects.filter(user_id__in=body.user_ids)}
    missing = [u for u in body.user_ids if u not in found]
    if missing:
        raise selectors.not_found(f"End User Id(s)={', '.join(missing)} do not exist in db.", "user_ids")
    services.end_user_delete_many(by=actor, end_users=found.values())
    return {"deleted_customers": len(found),
            "message": f"Successfully deleted customers with ids: {list(found)}"}


@_route("GET", "/list", response=list[s.EndUserOut])
def end_user_list(request):
    policy.require_may_manage_end_users(actor_of(request))
    return [s.end_user_out(e) for e in EndUser.objects.select_related("budget")]


@_route("POST", "/block", response=s.EndUserBlockOut)
def end_user_block(request, body: s.EndUserIdsIn):
    actor = actor_of(request)
    policy.require_may_manage_end_users(actor)
    users = services.end_users_set_blocked(by=actor, user_ids=body.user_ids, blocked=True)
    return {"blocked_users": [s.end_user_out(e) for e in users]}


@_route("POST", "/unblock", response=s.EndUserBlockOut)
def end_user_unblock(request, body: s.EndUserIdsIn):
    actor = actor_of(request)
    policy.require_may_manage_end_users(actor)
    users = services.end_users_set_blocked(by=actor, user_ids=body.user_ids, blocked=False)
    return {"blocked_users": [s.end_user_out(e) for e in users]}
