"""The one budget-duration parser (accounts/durations.py) that models, services, budget resets and alerts share."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from accounts.durations import BUDGET_DURATION, parse_duration


@pytest.mark.parametrize("text, period", [
    ("30s", dt.timedelta(seconds=30)), ("30m", dt.timedelta(minutes=30)), ("1h", dt.timedelta(hours=1)),
    ("7d", dt.timedelta(days=7)), (" 30d ", dt.timedelta(days=30)), ("1d\n", dt.timedelta(days=1)),
])
def test_a_number_and_a_unit_is_a_period(text, period):
    assert parse_duration(text) == period


@pytest.mark.parametrize("text", ["", None, "1 d", "d", "1w", "0d", "-1d", "1.5h", "1dd", "１d"])
def test_anything_else_is_no_period(text):
    assert parse_duration(text) is None


def test_the_model_field_accepts_what_services_store():
    BUDGET_DURATION("30d")
    with pytest.raises(ValidationError):
        BUDGET_DURATION(" 30d")
