"""What every management handler shares: the one router, how callers authenticate, and body helpers."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Router
from ninja.security import HttpBearer

from accounts import schemas as s
from accounts.policy import Actor, actor_from_key


class ManagementKey(HttpBearer):
    """Authorization: Bearer KEY, or x-api-key: KEY, as LiteLLM accepts both.

    A key that belongs to no user is refused on management routes, except the few that answer a key
    about itself (`keyless=True`: /key/info, /team/info of its own team, /model/info, /v2/model/info,
    /model_group/info).
    """

    def __init__(self, *, keyless: bool = False):
        super().__init__()
        self.keyless = keyless

    def __call__(self, request: HttpRequest) -> Actor:
        header = request.headers.get("Authorization", "")
        raw = header[7:] if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "") or header
        return self.authenticate(request, raw)

    def authenticate(self, request: HttpRequest, token: str) -> Actor:
        return actor_from_key(token, keyless=self.keyless)


management_auth = ManagementKey()
# For the routes where a key with no user behind it reads about itself.
self_key_auth = ManagementKey(keyless=True)
router = Router(auth=management_auth, tags=["Management"])


def actor_of(request: HttpRequest) -> Actor:
    return request.auth  # type: ignore[attr-defined]


def budget_sent(body: s.BudgetIn) -> dict[str, Any]:
    """Only the budget fields the caller actually sent (so an update never clears what it did not name)."""
    sent = body.model_fields_set
    return {name: getattr(body, name) for name in ("max_budget", "soft_budget", "budget_duration", "tpm_limit",
                                                   "rpm_limit", "max_parallel_requests") if name in sent}


def fields_sent(body: s.BudgetIn, *names: str) -> dict[str, Any]:
    """The budget fields and the named ones that the caller actually sent, for an `<entity>_update`."""
    sent = body.model_fields_set
    return {**budget_sent(body), **{name: getattr(body, name) for name in names if name in sent}}


def members_of(member: s.MemberIn | list[s.MemberIn], roles: dict[str, str] | None = None) -> list[tuple]:
    members = member if isinstance(member, list) else [member]
    return [(m.user_id, m.user_email, (roles or {}).get(m.role, m.role)) for m in members]
