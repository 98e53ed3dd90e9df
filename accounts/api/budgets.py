"""Management API for shared budgets (/budget/*), on LiteLLM's paths: proxy admins only (accounts.policy.budgets)."""
from __future__ import annotations

from accounts import policy, selectors, services
from accounts.api.common import actor_of, router
from accounts.models import Budget
from accounts.schemas import budgets as s


def _fields(body: s.BudgetNewIn) -> dict:
    names = ("max_budget", "soft_budget", "budget_duration", "tpm_limit", "rpm_limit", "max_parallel_requests",
             "model_max_budget", "budget_reset_at")
    return {name: getattr(body, name) for name in names if name in body.model_fields_set}


@router.post("/budget/new", response=s.BudgetObjectOut)
def budget_new(request, body: s.BudgetNewIn):
    budget = services.budget_create(by=actor_of(request), budget_id=body.budget_id, **_fields(body))
    return s.budget_object_out(budget)


@router.post("/budget/update", response=s.BudgetObjectOut,
             summary="Change a budget; its new limits are copied to every key, team, organization and end user "
                     "that references it.")
def budget_update(request, body: s.BudgetUpdateIn):
    actor = actor_of(request)
    policy.require_may_manage_budgets(actor)
    budget = services.budget_update(by=actor, budget=selectors.budget_get(budget_id=body.budget_id), **_fields(body))
    return s.budget_object_out(budget)


@router.post("/budget/info", response=list[s.BudgetObjectOut])
def budget_info(request, body: s.BudgetInfoIn):
    policy.require_may_manage_budgets(actor_of(request))
    if not body.budgets:
        raise services.invalid("Give budgets: the list of budget ids to show.", "budgets")
    return [s.budget_object_out(b) for b in Budget.objects.filter(budget_id__in=body.budgets)]


@router.get("/budget/list", response=list[s.BudgetObjectOut])
def budget_list(request):
    policy.require_may_manage_budgets(actor_of(request))
    return [s.budget_object_out(b) for b in Budget.objects.all()]


@router.post("/budget/delete", response=s.BudgetObjectOut,
             summary="Delete a budget; what referenced it keeps the limits it had.")
def budget_delete(request, body: s.BudgetDeleteIn):
    actor = actor_of(request)
    policy.require_may_manage_budgets(actor)
    budget = selectors.budget_get(budget_id=body.id, param="id")
    out = s.budget_object_out(budget)
    services.budget_delete(by=actor, budget=budget)
    return out
