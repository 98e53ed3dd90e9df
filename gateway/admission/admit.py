"""admit(ctx): refuse (429/503) or reserve, on Redis in one EVALSHA, else on per-process counters."""
from __future__ import annotations

from typing import Any

import orjson
from django.conf import settings

from billing.connections import KEY_PREFIX, redis_configured
from billing.pricing import estimate_cost_units, from_units, prices
from gateway.admission import breaker, local, scripts
from gateway.admission.breaker import fail_open, redis_errors
from gateway.admission.entities import Entity, Reservation, dearest, entities_for, model_group, without_budget
from gateway.admission.rebuild import rebuild
from gateway.admission.refusals import budget_refusal, named, rate_headers, refusal, soft_warnings, unavailable
from gateway.context import RequestContext
from llmur.core.errors import LlmurError

# A parallel slot or budget reservation not settled within this time frees itself (a crashed
# process cannot leak capacity forever). Longer than any sane upstream timeout.
INFLIGHT_TTL_MS = 30 * 60 * 1000
RESERVATION_BUCKETS = 31            # one-minute buckets, covering INFLIGHT_TTL_MS


async def admit(ctx: RequestContext) -> None:
    """Refuse (LlmurError 429/503) or reserve; see the package docstring (gateway/admission/__init__.py)."""
    try:
        await _admit(ctx)
    except LlmurError as error:
        raise await named(error) from None


async def _admit(ctx: RequestContext) -> None:
    await prices.ensure_loaded()
    group = await model_group(ctx)
    # Per-deployment rpm/tpm are checked here when the deployment is known: the model group has
    # one deployment (or the caller chose it). Across several, picking one under its limits is
    # the router's part.
    entities = entities_for(ctx, group[0] if len(group) == 1 else None)
    price = dearest(ctx, group)
    reservation = Reservation(mode="none", entities=entities, price=price)
    if any(entity.budget >= 0 for entity in entities):
        body_bytes = ctx.body_bytes or len(orjson.dumps(ctx.body))
        reservation.reserve = estimate_cost_units(price, body=ctx.body, body_bytes=body_bytes,
                                                  deployment=group[0] if len(group) == 1 else None)
    if entities:
        if redis_configured() and breaker.state.usable():
            try:
                await _admit_redis(ctx, entities, reservation)
                reservation.mode = "redis"
                breaker.state.succeeded()
                ctx.reservation = reservation
                return
            except redis_errors() as exc:
                breaker.state.failed("admit", exc)
        if redis_configured() and not fail_open():
            raise unavailable()
        # Entities without a starting spend (unknown budget) are admitted on their other limits.
        await local.load_bases(entities, from_redis_snapshot=redis_configured())
        checked = [e if e.budget < 0 or e.ref in local.counters.base else without_budget(e) for e in entities]
        local.counters.admit(ctx, checked, reservation, _share())
        reservation.entities = checked
        reservation.mode = "local"
    ctx.reservation = reservation


async def _admit_redis(ctx: RequestContext, entities: list[Entity], reservation: Reservation) -> None:
    budgets = [entity.budget_arg for entity in entities]
    for _attempt in range(3):
        args: list[Any] = [KEY_PREFIX, ctx.request_id, reservation.reserve, INFLIGHT_TTL_MS, RESERVATION_BUCKETS,
                           len(entities)]
        for entity, budget in zip(entities, budgets):
            args += [entity.ref, entity.rpm, entity.tpm, entity.parallel, budget]
        reply = await scripts.runner.run("admit", args)
        status = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if status == "ok":
            reservation.bucket = int(reply[1])
            ctx.response_headers.update(rate_headers(int(reply[2]), int(reply[3]), int(reply[5]), int(reply[4])))
            n = len(entities)
            spends = [int(value) if value not in (b"", "", None) else None for value in reply[6:6 + n]]
            reserved = [int(value) for value in reply[6 + n:6 + 2 * n]]
            soft_warnings(ctx, entities, spends)
            for entity, spend, held in zip(entities, spends, reserved):
                if spend is not None:
                    if entity.kind == "key":
                        ctx.key_spend = from_units(spend)   # LiteLLM's x-litellm-key-spend
                    # Should Redis fail, this process takes over from here: settled spend plus
                    # what was in flight (those requests settle into the database, not here).
                    local.counters.known_spend[entity.ref] = spend + held + reservation.reserve
            return
        if status == "load":
            for index in reply[1:]:
                entity = entities[int(index) - 1]
                if not await rebuild(entity):
                    if not fail_open():
                        raise unavailable()
                    budgets[int(index) - 1] = -1   # admit on the other checks this once
            continue
        entity = entities[int(reply[1]) - 1]
        if status == "budget":
            raise budget_refusal(entity, from_units(int(reply[2])), from_units(int(reply[3])))
        raise refusal(status, entity, int(reply[2]), int(reply[3]), int(reply[4]))
    raise LlmurError(503, "service_unavailable", "Budget counters are being rebuilt; retry shortly.", code="503",
                     headers={"Retry-After": "1"})


def _share() -> int:
    return max(1, int(settings.LLMUR.config.workers)) if redis_configured() else 1
