"""Money and counts as people read them: $1,234.56, $0.00042, 300,266 tokens, $3.00 per 1M tokens.

One place for the admin, refusal texts and alerts, so a cost never reads "0.00034830" on one page
and "$0.0003483" on the next.
"""
from __future__ import annotations

from decimal import Decimal

PER_MILLION = Decimal(1_000_000)


def money(amount: Decimal | float | None) -> str:
    """$10.02, or more decimals when cents would hide the amount ($0.00042); thousands separated."""
    value = Decimal(str(amount)) if amount is not None else Decimal(0)
    sign = "-" if value < 0 else ""
    text = f"{abs(value):.8f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${int(whole):,}.{frac.ljust(2, '0')}"


def per_million(price_per_token: Decimal | float | None) -> str:
    """A per-token price as dollars per million tokens: 0.000003 → $3.00."""
    if price_per_token is None:
        return "-"
    return money(Decimal(str(price_per_token)) * PER_MILLION)


def count(value: int | None) -> str:
    """300266 → 300,266."""
    return f"{int(value or 0):,}"
