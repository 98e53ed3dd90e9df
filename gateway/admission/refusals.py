"""The answers admission gives: 429/503 texts and headers, entity names in them, soft-budget warnings."""
from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

from billing.pricing import from_units
from billing.selectors import entity_name_get
from gateway.admission.entities import Entity
from gateway.admission.single_flight import single_flight
from gateway.context import RequestContext
from llmur.core.db import db_call
from llmur.core.errors import LlmurError

logger = logging.getLogger("llmur.limits")


def money(amount: Decimal) -> str:
    """$10.02, or more decimals when cents would hide the amount ($0.00042)."""
    text = f"{amount:.8f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def rate_headers(limit_requests: int, remaining_requests: int, remaining_tokens: int,
                  limit_tokens: int = -1) -> dict[str, str]:
    headers = {}
    if limit_requests >= 0:
        headers["x-ratelimit-limit-requests"] = str(limit_requests)
        headers["x-ratelimit-remaining-requests"] = str(max(0, remaining_requests))
    if limit_tokens >= 0:
        headers["x-ratelimit-limit-tokens"] = str(limit_tokens)
    if remaining_tokens >= 0:
        headers["x-ratelimit-remaining-tokens"] = str(max(0, remaining_tokens))
    return headers


def refusal(kind: str, entity: Entity, limit: int, retry_after: int, remaining_tokens: int = -1) -> LlmurError:
    retry_after = max(1, int(retry_after))
    if kind == "rpm":
        what = f"rate limit exceeded: {limit} requests per minute (rpm_limit)"
        headers = rate_headers(limit, 0, remaining_tokens)
    elif kind == "tpm":
        what = f"token rate limit exceeded: {limit} tokens per minute (tpm_limit)"
        headers = rate_headers(-1, 0, 0, limit)
        if entity.rpm >= 0:
            headers["x-ratelimit-limit-requests"] = str(entity.rpm)
    else:
        what = f"parallel request limit reached: {limit} at a time (max_parallel_requests)"
        headers = {}
    headers["Retry-After"] = str(retry_after)
    error = LlmurError(429, "rate_limit_error", f"{entity.label} {what}. Retry after {retry_after} s.",
                       code="429", headers=headers)
    error.entity = entity
    return error


def budget_refusal(entity: Entity, spend: Decimal, reserved: Decimal = Decimal(0)) -> LlmurError:
    in_flight = f" (+ {money(reserved)} reserved by requests in flight)" if reserved > 0 else ""
    # LiteLLM's clients look for its phrase "Budget has been exceeded!"; llmur's detail follows it.
    error = LlmurError(429, "budget_exceeded",
                       f"Budget has been exceeded! {entity.label} budget exceeded: spend {money(spend)}{in_flight} "
                       f"of max_budget "
                       f"{money(entity.max_budget or Decimal(0))}", code="429")
    error.entity = entity
    return error


_names: dict[tuple[str, Any], tuple[float, str]] = {}
NAME_TTL_SECONDS = 300.0


async def named(error: LlmurError) -> LlmurError:
    """Put the entity's name in a refusal ("team 'research'", not "team 7") when the principal lacked it.

    Only refusals pay for this, and names are cached, so a client hammering a spent budget costs
    one query per entity every few minutes.
    """
    entity: Entity | None = error.entity
    if entity is None or entity.kind not in ("user", "project", "team", "organization") or \
            entity.label != f"{entity.kind} {entity.pk}":
        return error
    cached = _names.get((entity.kind, entity.pk))
    if cached is None or time.monotonic() - cached[0] > NAME_TTL_SECONDS:
        try:
            name = await single_flight(("name", entity.ref), lambda: db_call(
                entity_name_get, kind=entity.kind, pk=entity.pk))
        except Exception:  # noqa: BLE001 - the id will do
            return error
        cached = _names[(entity.kind, entity.pk)] = (time.monotonic(), name)
    if cached[1]:
        error.message = error.message.replace(entity.label, f"{entity.kind} '{cached[1]}'", 1)
        error.args = (error.message,)
    return error


def unavailable() -> LlmurError:
    return LlmurError(503, "service_unavailable",
                      "Rate limits and budgets cannot be checked: the cache (Redis) is unreachable and "
                      "cache_failure_policy is fail_closed. Retry shortly.", code="503",
                      headers={"Retry-After": "1"})


def soft_warnings(ctx: RequestContext, entities: list[Entity], spends: list[int | None]) -> None:
    warnings = []
    for entity, spend in zip(entities, spends):
        if entity.soft >= 0 and spend is not None and spend >= entity.soft:
            warnings.append(f"{entity.label} soft_budget {money(entity.soft_budget or Decimal(0))} reached: "
                            f"spend {money(from_units(spend))}")
    if warnings:
        ctx.response_headers["x-llmur-budget-warning"] = "; ".join(warnings)
        _log_soft_budget(warnings)


_soft_logged: dict[str, float] = {}


def _log_soft_budget(warnings: list[str]) -> None:
    now = time.monotonic()
    for warning in warnings:
        if now - _soft_logged.get(warning.split(" soft_budget")[0], -1e9) > 60:
            _soft_logged[warning.split(" soft_budget")[0]] = now
            logger.warning("soft budget reached: %s", warning)
