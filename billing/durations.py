"""budget_duration values as LiteLLM accepts them: a number and a unit, e.g. 30s, 30m, 1h, 1d, 7d, 30d."""
from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: str) -> timedelta | None:
    """The period of a budget_duration, or None when it is empty or not understood."""
    match = _DURATION.match(value or "")
    if not match or int(match.group(1)) == 0:
        return None
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
