"""Budget and key durations as LiteLLM writes them: a number and a unit, e.g. 30s, 30m, 1h, 1d, 7d, 30d.

The one parser for every place that reads one (model validation, services, budget resets, alerts).
Whitespace around the value is ignored; inside it ("1 d") it is not, and zero is no period.
"""
from __future__ import annotations

import re
from datetime import timedelta

from django.core.validators import RegexValidator

# The stored form: what the model field accepts (services store values stripped).
PATTERN = r"^\d+[smhd]$"
EXAMPLES = "30s, 30m, 1h, 1d, 7d, 30d"
BUDGET_DURATION = RegexValidator(PATTERN, f"Use a number and a unit: {EXAMPLES}.")

_DURATION = re.compile(r"([0-9]+)([smhd])")  # ASCII digits only: "１d" is not a duration
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str | None) -> timedelta | None:
    """The period a duration names, or None when it is empty, zero or not understood."""
    match = _DURATION.fullmatch((value or "").strip())
    if not match or int(match.group(1)) == 0:
        return None
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
