"""settle(ctx): release what admit took, book the real cost and tokens, record the spend event."""
from __future__ import annotations

import asyncio
from typing import Any

import orjson

from billing import tokens
from billing.connections import KEY_PREFIX, STREAM, async_redis, redis_configured
from billing.pricing import cost_of, prices, to_units
from billing.writer import writer
from gateway.admission import breaker, local, scripts
from gateway.admission.batcher import settlements
from gateway.admission.breaker import redis_errors
from gateway.admission.entities import Reservation, entities_for
from gateway.admission.protocol import PLAIN_POOLS
from gateway.context import RequestContext
from gateway.spend_event import event_from_context


def _complete_usage(ctx: RequestContext) -> None:
    """Count tokens the upstream did not report (a stream without usage, a client that left)."""
    usage = ctx.usage
    text = ctx.completion_text
    if not (ctx.usage_estimated or (usage.total_tokens == 0 and isinstance(text, str) and text)):
        return
    if usage.prompt_tokens == 0:
        usage.prompt_tokens = tokens.count_prompt(ctx.body)
    if isinstance(text, str) and text:
        # The text the client received, tokenized, replaces the pipeline's chunk count.
        usage.completion_tokens = tokens.count_text(text)
    ctx.usage_estimated = True


async def settle(ctx: RequestContext) -> None:
    """Release what admit took, book the real cost and tokens, record the spend event."""
    reservation: Reservation | None = ctx.reservation
    if reservation is None:
        # Not admitted through admit() (which loads prices): nothing was reserved to give back.
        await prices.ensure_loaded()
        reservation = Reservation(mode="none", entities=entities_for(ctx),
                                  price=prices.price_for(model=ctx.model, deployment=ctx.deployment))
    _complete_usage(ctx)
    # The real price is the deployment's that answered (admission reserved at the dearest).
    price = prices.price_for(model=ctx.model, deployment=ctx.deployment) if ctx.deployment else reservation.price
    ctx.cost = cost_of(price, prompt_tokens=ctx.usage.prompt_tokens, completion_tokens=ctx.usage.completion_tokens)
    cost_units = to_units(ctx.cost)
    event = event_from_context(ctx, cost=ctx.cost)
    if reservation.mode == "local":
        local.counters.settle(ctx, reservation, cost_units)
    if redis_configured() and breaker.state.usable():
        # A reservation taken locally was never made in Redis: only the event goes there.
        entities = reservation.entities if reservation.mode == "redis" else []
        args: list[Any] = [KEY_PREFIX, ctx.request_id, reservation.bucket,
                           reservation.reserve if reservation.mode == "redis" else 0, cost_units,
                           ctx.usage.total_tokens, STREAM, orjson.dumps(event), len(entities)]
        for entity in entities:
            args += [entity.ref, entity.flags]
        if type(async_redis().connection_pool).__name__ in PLAIN_POOLS:
            def fallback(exc: BaseException) -> None:
                breaker.state.failed("settle", exc)
                _settle_without_redis(reservation, event)

            # Queued now, before any await: a cancelled wait still settles, once (see SettlementBatcher).
            await settlements.submit(args, fallback)
            return
        # Sentinel: redis-py's own path, in a task of its own that a cancelled request cannot interrupt.
        await asyncio.shield(_settle_through_redis_py(args, reservation, event))
        return
    _settle_without_redis(reservation, event)


async def _settle_through_redis_py(args: list[Any], reservation: Reservation, event: dict[str, Any]) -> None:
    try:
        await scripts.runner.run("settle", args)
        breaker.state.succeeded()
    except redis_errors() as exc:
        breaker.state.failed("settle", exc)
        _settle_without_redis(reservation, event)


def _settle_without_redis(reservation: Reservation, event: dict[str, Any]) -> None:
    if redis_configured():
        # The counters this cost should have reached in Redis are rebuilt once Redis is back.
        for entity in reservation.entities:
            if entity.tracked and entity.kind != "deployment":
                breaker.state.dirty.add((entity.kind, entity.pk))
    writer.add(event)
