"""Missing budget counters in Redis recreated from the database plus the events still in the spend stream."""
from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import orjson

from billing.connections import STREAM, async_redis, budget_key
from billing.pricing import to_units
from billing.selectors import budget_snapshot, team_member_owners
from gateway.admission.breaker import redis_errors
from gateway.admission.entities import Entity
from gateway.admission.single_flight import single_flight
from llmur.core.db import db_call

logger = logging.getLogger("llmur.limits")


async def _pending_costs(kind: str, pk: Any) -> dict[str, Decimal]:
    """Costs of this entity's events still in the spend stream (settled, not yet in the database)."""
    client = async_redis()
    owner_field = {"key": "key_id", "user": "user_id", "project": "project_id", "team": "team_id",
                   "organization": "organization_id", "end_user": "end_user_id"}.get(kind)
    wanted: dict[str, str] = {owner_field: str(pk)} if owner_field else {}
    if kind == "team_member":
        # A member is their (team, user) pair: the events of their keys of that team.
        owners = await db_call(team_member_owners, pk=pk)
        wanted = {"team_id": str(owners[0]), "user_id": str(owners[1])} if owners else {}
    pending: dict[str, Decimal] = {}
    if not wanted:
        return pending
    start = "-"
    while True:
        entries = await client.xrange(STREAM, min=start, max="+", count=1000)
        for entry_id, fields in entries:
            try:
                event = orjson.loads(fields[b"e"])
            except (KeyError, ValueError):
                continue
            if all(str(event.get(name)) == value for name, value in wanted.items()):
                pending[event["request_id"]] = Decimal(str(event.get("cost") or "0"))
        if len(entries) < 1000:
            return pending
        start = "(" + entries[-1][0].decode()


async def rebuild(entity: Entity) -> bool:
    """Recreate a missing budget counter from the database and the stream; False if impossible."""
    return await single_flight(("rebuild", entity.ref), lambda: _rebuild_now(entity))


async def _rebuild_now(entity: Entity) -> bool:
    try:
        pending = await _pending_costs(entity.kind, entity.pk)
        spend = await db_call(budget_snapshot, kind=entity.kind, pk=entity.pk, pending=pending)
    except redis_errors():
        raise
    except Exception as exc:  # noqa: BLE001 - database down: known counters keep working
        logger.warning("cannot rebuild the budget counter of %s (database: %s: %s)", entity.label,
                       exc.__class__.__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        return False
    await async_redis().hsetnx(budget_key(entity.kind, entity.pk), "s", to_units(spend))
    return True
