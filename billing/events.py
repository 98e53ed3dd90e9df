"""Spend events: the flat JSON object settlement records for one request (one stream entry field,
one spool line), read here on its way to a SpendLog row. The gateway builds it
(gateway/spend_event.py); its request_id is the idempotency key all the way to the database.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

ENTITY_FIELDS = ("key_id", "user_id", "project_id", "team_id", "organization_id")


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def decode(raw: bytes | str) -> dict[str, Any]:
    event = orjson.loads(raw)
    if not isinstance(event, dict) or not event.get("request_id"):
        raise ValueError("spend event without request_id")
    return event


def event_cost(event: dict[str, Any]) -> Decimal:
    return Decimal(str(event.get("cost") or "0"))
