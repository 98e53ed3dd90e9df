"""Writes on shared budgets (LiteLLM's budget table) and on what references them.

A budget holds limits only. An entity that references it (a key, team, organization or end user,
through its `budget` field) takes a copy of those limits into its own fields, through that
entity's own update service, so every rule about nesting and loosening applies as if the limits
had been set by hand; /budget/update copies the new limits again to every entity that references
the budget. Spend stays per entity: two keys on the same $10 budget may each spend $10. Deleting a
budget unlinks the entities and leaves them the limits they had.
"""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db import transaction

from accounts import policy
from accounts.models import Budget, EndUser, Organization, Team, VirtualKey
from accounts.policy import Actor
from accounts.services.common import (
    BUDGET_FIELDS,
    apply_budget,
    budget_values,
    changed_values,
    delete_audited,
    invalid,
    locked_for_update,
    parse_expiry,
    save_created,
    save_update,
)
from accounts.services.end_users import end_user_update, limits_of
from accounts.services.keys import key_update
from accounts.services.organizations import organization_update
from accounts.services.teams import team_update
from llmur.core.errors import LlmurError

BUDGET_UPDATABLE = {"model_max_budget", "budget_reset_at", *BUDGET_FIELDS}
# Entity type → its update service; each checks its own rules on the copied limits.
_UPDATERS = ((VirtualKey, "key", key_update), (Team, "team", team_update),
             (Organization, "organization", organization_update), (EndUser, "end_user", end_user_update))


def _model_max_budget(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise invalid('model_max_budget must map model names to budgets, e.g. {"gpt-4o": {"max_budget": 10}}.',
                      "model_max_budget")
    for entry in value.values():
        budget_values({k: v for k, v in entry.items() if k in BUDGET_FIELDS})
    return value


def _reset_at(value: Any) -> dt.datetime | None:
    return parse_expiry(expires=value) if isinstance(value, (str, dt.datetime)) else None


def _apply(budget: Budget, fields: dict[str, Any]) -> None:
    apply_budget(budget, budget_values({k: v for k, v in fields.items() if k in BUDGET_FIELDS}))
    if "model_max_budget" in fields:
        budget.model_max_budget = _model_max_budget(fields["model_max_budget"])
    if fields.get("budget_reset_at") is not None:
        budget.budget_reset_at = _reset_at(fields["budget_reset_at"])


@transaction.atomic
def budget_create(*, by: Actor, budget_id: str | None = None, **fields: Any) -> Budget:
    policy.require_may_manage_budgets(by)
    unknown = set(fields) - BUDGET_UPDATABLE
    if unknown:
        raise TypeError(f"unknown budget fields: {', '.join(sorted(unknown))}")
    name = str(budget_id or "").strip() or str(uuid.uuid4())
    if len(name) > 200:
        raise invalid("budget_id must be at most 200 characters.", "budget_id")
    if Budget.objects.filter(budget_id=name).exists():
        raise invalid(f"Budget with id {name!r} already exists.", "budget_id")
    budget = Budget(budget_id=name, created_by=by.label[:200], updated_by=by.label[:200])
    _apply(budget, fields)
    save_created(by=by, instance=budget)
    return budget


@transaction.atomic
def budget_update(*, by: Actor, budget: Budget, **fields: Any) -> Budget:
    """Changes the budget and copies its new limits to every entity that references it (all or nothing)."""
    policy.require_may_manage_budgets(by)
    budget, before = locked_for_update(budget, fields, updatable=BUDGET_UPDATABLE, what="budget")
    _apply(budget, fields)
    budget.updated_by = by.label[:200]
    save_update(by=by, instance=budget, before=before)
    for model, _, _ in _UPDATERS:
        for entity in model.objects.filter(budget=budget):
            _copy_limits(by=by, entity=entity, budget=budget)
    return budget


@transaction.atomic
def budget_delete(*, by: Actor, budget: Budget) -> None:
    """Entities that referenced it keep the limits they had and lose the link."""
    policy.require_may_manage_budgets(by)
    delete_audited(by=by, instance=budget)


def budget_for_reference(*, by: Actor, budget_id: Any, limits: dict[str, Any]) -> tuple[Budget | None, dict]:
    """For a create or update that names budget_id: the budget, and the limits to write (its own, not the body's)."""
    if budget_id in (None, ""):
        return None, limits
    policy.require_may_reference_budget(by)
    if any(value is not None for value in limits.values()):
        raise invalid("Give budget_id or budget fields (max_budget, tpm_limit, ...), not both.", "budget_id")
    found = Budget.objects.filter(budget_id=str(budget_id).strip()).first()
    if found is None:
        raise LlmurError(404, "not_found_error", f"No budget with budget_id {str(budget_id)[:200]!r}.",
                         param="budget_id", code="404")
    return found, limits_of(found)


@transaction.atomic
def budget_reference(*, by: Actor, entity: Any, budget: Budget | None) -> Any:
    """Gives a key, team or organization a shared budget (copying its limits), or unlinks it (None)."""
    policy.require_may_reference_budget(by)
    type(entity).objects.filter(pk=entity.pk).update(budget=budget)
    entity.budget = budget
    if budget is None:
        return entity
    return _copy_limits(by=by, entity=entity, budget=budget)


def _copy_limits(*, by: Actor, entity: Any, budget: Budget) -> Any:
    values = changed_values(entity, limits_of(budget))
    if not values:
        return entity
    for model, name, update in _UPDATERS:
        if isinstance(entity, model):
            try:
                return update(by=by, **{name: entity}, **values)
            except LlmurError as exc:
                if exc.status == 400:
                    exc.message = f"Budget {budget.budget_id!r} does not fit {name} {str(entity)!r}: {exc.message}"
                    exc.args = (exc.message,)
                raise
    raise TypeError(f"{type(entity).__name__} cannot reference a budget")
