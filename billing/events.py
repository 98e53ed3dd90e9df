"""Spend events: the flat JSON object settlement records for one request (one stream entry field,
one spool line), read here on its way to a SpendLog row. The gateway builds it
(gateway/spend_event.py); its request_id is the idempotency key all the way to the database.
"""
from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

ENTITY_FIELDS = ("key_id", "user_id", "project_id", "team_id", "organization_id")

# What else a spend event may carry, stored by a higher layer in the same transaction as its
# SpendLog row: called with the events recorded for the first time (e.g. memory's session turns,
# memory/services.py). Registered from the higher app's ready().
recorders: list[Callable[..., Any]] = []


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def decode(raw: bytes | str) -> dict[str, Any]:
    event = orjson.loads(raw)
    if not isinstance(event, dict) or not event.get("request_id"):
        raise ValueError("spend event without request_id")
    return event


def event_cost(event: dict[str, Any]) -> Decimal:
    return Decimal(str(event.get("cost") or "0"))
