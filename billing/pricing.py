"""What a request costs: per-token prices from ModelPrice, overridden per deployment, in Decimal.

Prices live in an in-process cache loaded from the database at start and refreshed in the
background, so pricing a request never queries the database. Costs are rounded to 1e-8 USD, the
precision of SpendLog.cost and of the entities' spend fields, and the Redis budget counters
count in the same unit (integers, so they add up exactly).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from billing.models import ModelPrice
from llmur.core.db import db_call

logger = logging.getLogger("llmur.billing")

UNIT = Decimal("0.00000001")          # 1e-8 USD: SpendLog.cost's decimal_places
ZERO = Decimal(0)
REFRESH_SECONDS = 60.0

# What a request without max_tokens reserves for its answer. Answers longer than this can make
# concurrent requests overshoot a budget by more than their reservations; clients that set
# max_tokens (or deployments with model_info.max_output_tokens) get the exact bound.
DEFAULT_RESERVED_COMPLETION_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class Price:
    input_cost_per_token: Decimal
    output_cost_per_token: Decimal


FREE = Price(ZERO, ZERO)


def to_units(amount: Decimal | None, *, rounding: str = ROUND_HALF_UP) -> int:
    """Dollars → integer units of 1e-8 USD."""
    if amount is None:
        return 0
    return int((Decimal(amount) / UNIT).to_integral_value(rounding=rounding))


def from_units(units: int | str) -> Decimal:
    return (Decimal(int(units)) * UNIT).quantize(UNIT)


def quantize(amount: Decimal) -> Decimal:
    return amount.quantize(UNIT, rounding=ROUND_HALF_UP)


class PriceBook:
    """ModelPrice rows by model name, cached per process; refreshed without blocking a request."""

    def __init__(self) -> None:
        self._prices: dict[str, Price] | None = None
        self._loaded_at = 0.0
        self._refreshing: asyncio.Task | None = None
        self._first_load: asyncio.Future | None = None
        self._warned: set[str] = set()

    def load(self) -> None:
        """Read every ModelPrice (synchronous: at start, in a thread, or in a worker)."""
        self._prices = {row.model: Price(row.input_cost_per_token, row.output_cost_per_token)
                        for row in ModelPrice.objects.all()}
        self._loaded_at = time.monotonic()

    def invalidate(self) -> None:
        self._loaded_at = 0.0

    async def ensure_loaded(self) -> None:
        """Load on first use; later, refresh in the background once the cache is stale."""
        if self._prices is None:
            # One load for a whole burst of first requests, not one query each.
            if self._first_load is None or self._first_load.done():
                self._first_load = asyncio.ensure_future(db_call(self.load))
            await asyncio.shield(self._first_load)
            return
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS and self._refreshing is None:
            async def refresh() -> None:
                try:
                    await db_call(self.load)
                except Exception as exc:  # noqa: BLE001 - stale prices beat failed requests
                    logger.warning("price refresh failed, keeping cached prices: %s", exc.__class__.__name__)
                    self._loaded_at = time.monotonic()
                finally:
                    self._refreshing = None
            self._refreshing = asyncio.get_running_loop().create_task(refresh())

    def ensure_loaded_sync(self) -> None:
        if self._prices is None or time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            self.load()

    def price_for(self, *, model: str, deployment: Any = None) -> Price:
        """The deployment's own per-token prices if it sets them, else ModelPrice of its upstream model."""
        params = _get(deployment, "litellm_params") or {}
        info = _get(deployment, "model_info") or {}
        upstream = str(_get(params, "model") or model)
        overridden = info.get("input_cost_per_token") is not None and info.get("output_cost_per_token") is not None
        base = FREE if overridden else self._lookup(upstream, info.get("base_model"), model)
        return Price(_decimal(info.get("input_cost_per_token"), base.input_cost_per_token),
                     _decimal(info.get("output_cost_per_token"), base.output_cost_per_token))

    def is_priced(self, *, model: str, deployment: Any = None) -> bool:
        """Whether the deployment sets its own prices or a ModelPrice names its model (no silent 0)."""
        info = _get(deployment, "model_info") or {}
        if info.get("input_cost_per_token") is not None and info.get("output_cost_per_token") is not None:
            return True
        params = _get(deployment, "litellm_params") or {}
        upstream = str(_get(params, "model") or model)
        names = (upstream, upstream.split("/", 1)[-1], str(info.get("base_model") or ""), model)
        return any(name and name in (self._prices or {}) for name in names)

    def _lookup(self, upstream: str, base_model: Any, group: str) -> Price:
        prices = self._prices or {}
        # `openai/gpt-4o` is priced as gpt-4o; Azure-style deployments name their base_model.
        candidates = [upstream, upstream.split("/", 1)[-1], str(base_model or ""), group]
        for name in candidates:
            if name and name in prices:
                return prices[name]
        if upstream not in self._warned:
            self._warned.add(upstream)
            logger.warning("no price for model %s: its requests are recorded at cost 0 "
                           "(add a ModelPrice row or model_info.input/output_cost_per_token)", upstream)
        return FREE


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _decimal(value: Any, default: Decimal) -> Decimal:
    if value is None or value == "":
        return default
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return default


def cost_of(price: Price, *, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """tokens × prices, rounded once to 1e-8 USD."""
    return quantize(price.input_cost_per_token * prompt_tokens + price.output_cost_per_token * completion_tokens)


def estimate_prompt_tokens(body_bytes: int) -> int:
    """An upper estimate of the prompt's tokens from the request body's size.

    English averages about four bytes per token and CJK text about three; the body also carries
    JSON syntax and parameters, so bytes / 3 over-reserves slightly rather than under-reserves.
    Over-reserving only defers the last requests before a budget's edge until others settle;
    under-reserving would let concurrent requests overshoot the budget.
    """
    return max(1, -(-body_bytes // 3))


def reserved_completion_tokens(body: dict, deployment: Any = None) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    info = _get(deployment, "model_info") or {}
    for name in ("max_output_tokens", "max_tokens"):
        value = info.get(name)
        if isinstance(value, int) and value > 0:
            return value
    return DEFAULT_RESERVED_COMPLETION_TOKENS


def estimate_cost_units(price: Price, *, body: dict, body_bytes: int, deployment: Any = None) -> int:
    """What admission reserves: estimated prompt tokens × input price + reserved answer × output price."""
    amount = (price.input_cost_per_token * estimate_prompt_tokens(body_bytes)
              + price.output_cost_per_token * reserved_completion_tokens(body, deployment))
    return to_units(amount, rounding=ROUND_CEILING)


def budget_units(max_budget: Decimal) -> int:
    return to_units(max_budget, rounding=ROUND_FLOOR)


prices = PriceBook()
