"""Management API bodies and answers for end users (customers) and shared budgets, in LiteLLM's field names."""
from __future__ import annotations

import datetime as dt
from typing import Any

from ninja import Field

from accounts.models import Budget, EndUser
from accounts.schemas.inputs import BudgetIn, In
from accounts.schemas.outputs import BudgetOut, LimitsOut, Out
from accounts.schemas.render import budget_out, iso, limits_out

# --------------------------------------------------------------------------- budgets


class BudgetNewIn(BudgetIn):
    budget_id: str | None = Field(None, description="The budget's id; generated when omitted.")
    model_max_budget: dict[str, Any] | None = Field(None, description="Per-model budgets (stored, not enforced).")
    budget_reset_at: dt.datetime | None = Field(None, description="First reset; default now + budget_duration.")


class BudgetUpdateIn(BudgetNewIn):
    budget_id: str


class BudgetInfoIn(In):
    budgets: list[str] = Field(default_factory=list)


class BudgetDeleteIn(In):
    id: str


class BudgetObjectOut(LimitsOut):
    budget_id: str
    model_max_budget: dict[str, Any]
    created_at: str | None
    updated_at: str | None
    created_by: str | None
    updated_by: str | None


def budget_object_out(budget: Budget) -> dict[str, Any]:
    return {
        "budget_id": budget.budget_id, **limits_out(budget),
        "model_max_budget": budget.model_max_budget or {}, "created_at": iso(budget.created_at),
        "updated_at": iso(budget.updated_at), "created_by": budget.created_by or None,
        "updated_by": budget.updated_by or None,
    }


# --------------------------------------------------------------------------- end users


class EndUserNewIn(BudgetIn):
    user_id: str | None = Field(None, description="The `user` value requests send.")
    alias: str | None = None
    blocked: bool = False
    budget_id: str | None = Field(None, description="A shared budget whose limits the end user takes.")
    allowed_model_region: str | None = Field(None, description="eu or us: only deployments with that region_name serve it.")
    default_model: str | None = None
    metadata: dict[str, Any] | None = None


class EndUserUpdateIn(EndUserNewIn):
    user_id: str
    blocked: bool | None = None


class EndUserIdsIn(In):
    user_ids: list[str] = Field(default_factory=list)


class EndUserOut(BudgetOut):
    user_id: str
    alias: str | None
    blocked: bool
    budget_id: str | None
    allowed_model_region: str | None
    default_model: str | None
    metadata: dict[str, Any]
    litellm_budget_table: dict[str, Any] | None
    created_at: str | None
    updated_at: str | None


class EndUserBlockOut(Out):
    blocked_users: list[EndUserOut]


class EndUserDeleteOut(Out):
    deleted_customers: int
    message: str


def _budget_table(end_user: EndUser) -> dict[str, Any] | None:
    """LiteLLM's litellm_budget_table: the shared budget, else the end user's own limits, else None."""
    if end_user.budget_id is not None:
        return budget_object_out(end_user.budget)
    own = limits_out(end_user)
    if not any(v is not None for v in own.values()):
        return None
    return {"budget_id": None, **own}


def end_user_out(end_user: EndUser) -> dict[str, Any]:
    return {
        "user_id": end_user.user_id, "alias": end_user.alias or None, "blocked": end_user.blocked,
        "budget_id": end_user.budget.budget_id if end_user.budget_id else None, **budget_out(end_user),
        "allowed_model_region": end_user.allowed_model_region or None,
        "default_model": end_user.default_model or None, "metadata": end_user.metadata or {},
        "litellm_budget_table": _budget_table(end_user),
        "created_at": iso(end_user.created_at), "updated_at": iso(end_user.updated_at),
    }
