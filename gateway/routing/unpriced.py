"""The safety rule for wildcard groups: a model nobody priced is not served to a key with a budget.

A wildcard model_name ("*", "anthropic/*") serves names the operator never listed. If llmur knows
no price for one (no ModelPrice row for it, no model_info.input/output_cost_per_token on the
wildcard entry), its requests would be booked at cost 0 and a budget could be spent past without
limit. LiteLLM serves them anyway; llmur refuses them for callers with a budget anywhere up their
chain (key, user, project, team, organization) until the operator prices the model. Callers
without a budget (the master key among them) are served: there is nothing to overrun.
"""
from __future__ import annotations

from typing import Any

from billing.pricing import prices
from llmur.core.errors import LlmurError, shown


def has_budget(principal: Any) -> bool:
    return principal is not None and any(limit.max_budget is not None for limit in principal.limits)


def refuse_unpriced(ctx: Any, model: str, deployments: tuple[Any, ...]) -> None:
    """Raise when `model` is reached through a wildcard, has no price, and the caller has a budget."""
    if not deployments or not deployments[0].wildcard or not has_budget(ctx.principal):
        return
    if all(prices.is_priced(model=model, deployment=dep) for dep in deployments):
        return
    raise LlmurError(403, "permission_error",
                     f"Model '{shown(model)}' is served through the wildcard group '{deployments[0].wildcard}' and has "
                     "no known price, so a budget could not be kept on it: this key (or its owner) has a budget. "
                     "An operator can price it (a ModelPrice row for the model, or model_info "
                     "input_cost_per_token and output_cost_per_token on the wildcard entry), or use a key "
                     "without a budget.", param="model", code="unpriced_model")
