"""What limits a request: its key, user, project, team, organization and deployment, and what admit reserved."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.connections import entity_ref
from billing.pricing import Price, budget_units, prices
from gateway import registry
from gateway.context import RequestContext

NEVER = 2**52                       # a "budget" no spend reaches (exact in Lua's doubles)


@dataclass(frozen=True, slots=True)
class Entity:
    """One thing that limits a request: a key, user, project, team, organization or deployment."""

    kind: str
    pk: Any
    label: str
    rpm: int = -1
    tpm: int = -1
    parallel: int = -1
    budget: int = -1                   # max_budget in 1e-8 USD
    soft: int = -1
    max_budget: Decimal | None = None
    soft_budget: Decimal | None = None

    @property
    def ref(self) -> str:
        return entity_ref(self.kind, self.pk)

    @property
    def tracked(self) -> bool:
        """Whether its spend is counted: it has a max_budget, or a soft_budget to warn about."""
        return self.budget >= 0 or self.soft >= 0

    @property
    def budget_arg(self) -> int:
        """max_budget for the admit script; a soft-only entity gets one it can never reach."""
        return self.budget if self.budget >= 0 else (NEVER if self.soft >= 0 else -1)

    @property
    def flags(self) -> str:
        return ("p" if self.parallel >= 0 else "") + ("b" if self.tracked else "") + ("t" if self.tpm >= 0 else "")


def _limit(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def entities_for(ctx: RequestContext, deployment: Any = None) -> list[Entity]:
    found: list[Entity] = []
    principal = ctx.principal
    if principal is not None:
        end_user = (ctx.end_user_limits,) if ctx.end_user_limits is not None else ()
        for limits in (*principal.limits, *end_user):
            name = limits.name or (principal.alias or principal.display if limits.kind == "key" else "")
            label = f"{limits.kind} '{name}'" if name else f"{limits.kind} {limits.id}"
            entity = Entity(
                kind=limits.kind, pk=limits.id, label=label,
                rpm=_limit(limits.rpm_limit), tpm=_limit(limits.tpm_limit),
                parallel=_limit(limits.max_parallel_requests),
                budget=budget_units(limits.max_budget) if limits.max_budget is not None else -1,
                soft=budget_units(limits.soft_budget) if limits.soft_budget is not None else -1,
                max_budget=limits.max_budget, soft_budget=limits.soft_budget)
            if entity.rpm >= 0 or entity.tpm >= 0 or entity.parallel >= 0 or entity.budget >= 0 or entity.soft >= 0:
                found.append(entity)
    deployment = deployment if deployment is not None else ctx.deployment
    params = _field(deployment, "litellm_params")
    rpm = _limit(_field(deployment, "rpm") if _field(deployment, "rpm") is not None else _field(params, "rpm"))
    tpm = _limit(_field(deployment, "tpm") if _field(deployment, "tpm") is not None else _field(params, "tpm"))
    deployment_id = ctx.deployment_id or _field(deployment, "id") or ""
    if deployment_id and (rpm >= 0 or tpm >= 0):
        found.append(Entity(kind="deployment", pk=deployment_id, label=f"deployment '{deployment_id}'",
                            rpm=rpm, tpm=tpm))
    return found


async def model_group(ctx: RequestContext) -> tuple[Any, ...]:
    """The deployments the router may pick for this request (admission runs before routing)."""
    if ctx.deployment is not None:
        return (ctx.deployment,)
    try:
        return tuple((ctx.registry or await registry.get()).group(ctx.model))
    except Exception:  # noqa: BLE001 - no registry (tests, commands): price by the model name
        return ()


def dearest(ctx: RequestContext, group: tuple[Any, ...]) -> Price:
    """The price to reserve at: the dearest deployment the router might choose."""
    if not group:
        return prices.price_for(model=ctx.model, deployment=None)
    candidates = [prices.price_for(model=ctx.model, deployment=d) for d in group]
    return max(candidates, key=lambda p: (p.output_cost_per_token, p.input_cost_per_token))


@dataclass(slots=True)
class Reservation:
    """What admit took, so settle can give back exactly that."""

    mode: str                          # "redis" | "local" | "none"
    entities: list[Entity]
    price: Price
    reserve: int = 0                   # estimated cost reserved on each budgeted entity, 1e-8 USD
    bucket: int = 0                    # Redis reservation bucket (minute)
    local_reserved: list[str] = field(default_factory=list)


def without_budget(entity: Entity) -> Entity:
    """The entity with its rate limits only (its starting spend is unknown)."""
    return Entity(kind=entity.kind, pk=entity.pk, label=entity.label, rpm=entity.rpm, tpm=entity.tpm,
                  parallel=entity.parallel)
