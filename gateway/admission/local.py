"""Per-process counters for embedded mode and for Redis outages (limits divided by workers)."""
from __future__ import annotations

import logging
import time
from collections import defaultdict, deque

from billing.connections import redis_configured
from billing.pricing import from_units, to_units
from billing.selectors import entity_spend_get
from billing.writer import writer
from gateway.admission.entities import Entity, Reservation
from gateway.admission.refusals import budget_refusal, rate_headers, refusal, soft_warnings
from gateway.admission.single_flight import single_flight
from gateway.context import RequestContext
from llmur.core.db import db_call

logger = logging.getLogger("llmur.limits")


class LocalLimits:
    """Per-process counters for embedded mode and for Redis outages (limits divided by workers)."""

    def __init__(self) -> None:
        self.clear()
        self.known_spend: dict[str, int] = {}    # last spend + reservations seen in Redis, per entity ref

    def clear(self) -> None:
        self.requests: dict[str, deque[float]] = defaultdict(deque)
        self.tokens: dict[str, tuple[int, int]] = {}          # ref → (minute, tokens)
        self.inflight: dict[str, set[str]] = defaultdict(set)
        self.base: dict[str, int] = {}                        # spend when this process took over
        self.added: dict[str, int] = defaultdict(int)         # settled here since then
        self.reserved: dict[str, int] = defaultdict(int)

    def forget_budget(self, ref: str) -> None:
        self.base.pop(ref, None)
        self.added.pop(ref, None)
        self.known_spend.pop(ref, None)

    def admit(self, ctx: RequestContext, entities: list[Entity], reservation: Reservation, share: int) -> None:
        now = time.monotonic()
        minute = int(time.time() // 60)
        headers = (-1, -1, -1, -1)
        for entity in entities:
            ref = entity.ref
            if entity.rpm >= 0:
                limit = max(1, entity.rpm // share)
                log = self.requests[ref]
                while log and log[0] <= now - 60:
                    log.popleft()
                if len(log) >= limit:
                    raise refusal("rpm", entity, limit, int(60 - (now - log[0])) + 1)
                headers = (limit, limit - len(log) - 1, headers[2], headers[3])
            if entity.tpm >= 0:
                limit = max(1, entity.tpm // share)
                used_minute, used = self.tokens.get(ref, (minute, 0))
                used = used if used_minute == minute else 0
                if used >= limit:
                    raise refusal("tpm", entity, limit, 60 - int(time.time()) % 60)
                headers = (headers[0], headers[1], limit, limit - used)
            if entity.parallel >= 0 and len(self.inflight[ref]) >= max(1, entity.parallel // share):
                raise refusal("parallel", entity, max(1, entity.parallel // share), 1)
            if entity.budget >= 0:
                base = self.base[ref]
                # This process may spend its share of what was left when it took over.
                allowance = (entity.budget - base) // share
                if self.added[ref] + self.reserved[ref] >= allowance:
                    raise budget_refusal(entity, from_units(base + self.added[ref]), from_units(self.reserved[ref]))
        spends = []
        for entity in entities:
            ref = entity.ref
            if entity.rpm >= 0:
                self.requests[ref].append(now)
            if entity.parallel >= 0:
                self.inflight[ref].add(ctx.request_id)
            if entity.budget >= 0:
                self.reserved[ref] += reservation.reserve
                reservation.local_reserved.append(ref)
            spends.append(self.base[ref] + self.added[ref] if entity.soft >= 0 and ref in self.base else None)
        ctx.response_headers.update(rate_headers(headers[0], headers[1], headers[3], headers[2]))
        soft_warnings(ctx, entities, spends)

    def settle(self, ctx: RequestContext, reservation: Reservation, cost_units: int) -> None:
        minute = int(time.time() // 60)
        for entity in reservation.entities:
            ref = entity.ref
            self.inflight.get(ref, set()).discard(ctx.request_id)
            if ref in reservation.local_reserved:
                self.reserved[ref] = max(0, self.reserved[ref] - reservation.reserve)
            if entity.tracked and ref in self.base:
                self.added[ref] += cost_units
            if entity.tpm >= 0:
                used_minute, used = self.tokens.get(ref, (minute, 0))
                self.tokens[ref] = (minute, (used if used_minute == minute else 0) + ctx.usage.total_tokens)


counters = LocalLimits()


async def load_bases(entities: list[Entity], *, from_redis_snapshot: bool) -> None:
    """Give every budgeted entity a starting spend: the last seen in Redis, else the database."""
    for entity in entities:
        if not entity.tracked or entity.ref in counters.base:
            continue
        if from_redis_snapshot and entity.ref in counters.known_spend:
            counters.base[entity.ref] = counters.known_spend[entity.ref]
            continue
        if entity.kind == "deployment":
            continue
        if not redis_configured():
            await writer.flush()   # embedded: what this process settled must be in the database first
        try:
            spend = await single_flight(("spend", entity.ref), lambda: db_call(
                entity_spend_get, kind=entity.kind, pk=entity.pk))
        except Exception as exc:  # noqa: BLE001 - no Redis and no database: admit, and say so
            logger.warning("spend of %s unknown (database: %s); admitting without its budget",
                           entity.label, exc.__class__.__name__)
            continue
        counters.base[entity.ref] = to_units(spend)
