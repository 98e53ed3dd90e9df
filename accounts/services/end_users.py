"""Writes on end users (LiteLLM's customers): create, change, block, delete."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from accounts import policy
from accounts.audit import audit_record, snapshot
from accounts.models import Budget, EndUser
from accounts.policy import Actor
from accounts.services.common import (
    BUDGET_FIELDS,
    apply_budget,
    budget_values,
    changed_values,
    delete_audited,
    invalid,
    locked_for_update,
    save_created,
    save_update,
)
from llmur.core.errors import LlmurError

END_USER_UPDATABLE = {"alias", "blocked", "budget", "allowed_model_region", "default_model", "metadata",
                      *BUDGET_FIELDS}


def limits_of(budget: Budget) -> dict[str, Any]:
    """The limits an entity takes from a shared budget."""
    return {name: getattr(budget, name) for name in BUDGET_FIELDS}


def _region(value: Any) -> str:
    region = (value or "").strip().lower()
    if region not in ("", *EndUser.Region.values):
        raise invalid("allowed_model_region must be eu or us.", "allowed_model_region")
    return region


def _name(user_id: Any) -> str:
    name = str(user_id or "").strip()
    if not name:
        raise invalid("user_id must not be empty: it is the `user` value requests send.", "user_id")
    if len(name) > 200:
        raise invalid("user_id must be at most 200 characters.", "user_id")
    return name


@transaction.atomic
def end_user_create(*, by: Actor, user_id: str, alias: str = "", blocked: bool = False, budget: Budget | None = None,
                    allowed_model_region: str | None = None, default_model: str | None = None,
                    metadata: dict | None = None, **limits: Any) -> EndUser:
    """An end user; its limits are its own (the fields given) or a shared budget's (budget), not both."""
    policy.require_may_manage_end_users(by)
    name = _name(user_id)
    if EndUser.objects.filter(user_id=name).exists():
        raise invalid(f"Customer already exists, passed user_id={name!r}. Please pass a new user_id.", "user_id")
    if budget is not None and any(v is not None for v in limits.values()):
        raise invalid("Give budget_id or budget fields (max_budget, tpm_limit, ...), not both.", "budget_id")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata must be a JSON object.", "metadata")
    end_user = EndUser(user_id=name, alias=(alias or "").strip(), blocked=bool(blocked), budget=budget,
                       allowed_model_region=_region(allowed_model_region),
                       default_model=(default_model or "").strip(), metadata=metadata or {})
    apply_budget(end_user, budget_values(limits_of(budget) if budget is not None else limits))
    save_created(by=by, instance=end_user)
    return end_user


@transaction.atomic
def end_user_update(*, by: Actor, end_user: EndUser, **fields: Any) -> EndUser:
    """Changes the fields given; a new budget's limits are copied first, explicit limits win over them."""
    policy.require_may_manage_end_users(by)
    end_user, before = locked_for_update(end_user, fields, updatable=END_USER_UPDATABLE, what="end user")
    limits = {k: v for k, v in fields.items() if k in BUDGET_FIELDS}
    if "budget" in fields:
        end_user.budget = fields["budget"]
        if fields["budget"] is not None:
            limits = {**changed_values(end_user, limits_of(fields["budget"])), **limits}
    for name in ("alias", "default_model"):
        if name in fields:
            setattr(end_user, name, (fields[name] or "").strip())
    if "blocked" in fields:
        end_user.blocked = bool(fields["blocked"])
    if "allowed_model_region" in fields:
        end_user.allowed_model_region = _region(fields["allowed_model_region"])
    if "metadata" in fields:
        if fields["metadata"] is not None and not isinstance(fields["metadata"], dict):
            raise invalid("metadata must be a JSON object.", "metadata")
        end_user.metadata = fields["metadata"] or {}
    apply_budget(end_user, budget_values(limits))
    save_update(by=by, instance=end_user, before=before)
    return end_user


@transaction.atomic
def end_users_set_blocked(*, by: Actor, user_ids: Iterable[str], blocked: bool) -> list[EndUser]:
    """/end_user/block creates the end users it does not know yet (blocked), as LiteLLM does; unblock needs them."""
    policy.require_may_manage_end_users(by)
    names = list(dict.fromkeys(_name(u) for u in user_ids))
    if not names:
        raise invalid("Give user_ids: the end users to block or unblock.", "user_ids")
    found = {e.user_id: e for e in EndUser.objects.select_for_update().filter(user_id__in=names)}
    missing = [n for n in names if n not in found]
    if missing and not blocked:
        raise LlmurError(404, "not_found_error", f"End User Id(s)={', '.join(missing)} do not exist in db.",
                         param="user_ids", code="404")
    out = []
    for name in names:
        end_user = found.get(name)
        if end_user is None:
            out.append(end_user_create(by=by, user_id=name, blocked=True))
        elif end_user.blocked != blocked:
            before = snapshot(end_user)
            end_user.blocked = blocked
            end_user.save(update_fields=["blocked", "updated_at"])
            audit_record(by=by, action="block" if blocked else "unblock", instance=end_user, before=before,
                         after=snapshot(end_user))
            out.append(end_user)
        else:
            out.append(end_user)
    return out


@transaction.atomic
def end_user_delete_many(*, by: Actor, end_users: Iterable[EndUser]) -> None:
    """/end_user/delete: every end user or none. Their spend logs stay (they name the end user as text)."""
    policy.require_may_manage_end_users(by)
    for end_user in end_users:
        delete_audited(by=by, instance=end_user)
