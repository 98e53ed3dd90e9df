"""The sso: block (agent sign-in): off by default, every bad value one line naming its key."""
from __future__ import annotations

import pytest

from llmur.config import load_config
from tests.config.conftest import config_error


def test_device_flow_is_off_by_default(write, env):
    flow = load_config(write("log_level: info\n"), env=env).config.sso.device_flow
    assert flow.enabled is False
    assert (flow.code_lifetime_seconds, flow.interval_seconds, flow.key_duration) == (600, 5, "30d")


def test_device_flow_block_loads(write, env):
    flow = load_config(write("""
        sso:
          device_flow:
            enabled: true
            code_lifetime_seconds: 900
            interval_seconds: 10
            verification_uri: https://llm.example.com/sso/device/
            key_duration: 12h
            models: [mock-gpt]
            max_budget: 5
            budget_duration: 1d
            rpm_limit: 60
    """), env=env).config.sso.device_flow
    assert flow.enabled and flow.interval_seconds == 10 and flow.models == ["mock-gpt"]
    assert flow.verification_uri == "https://llm.example.com/sso/device"
    assert str(flow.max_budget) == "5" and flow.budget_duration == "1d" and flow.rpm_limit == 60


@pytest.mark.parametrize("block, key, says", [
    ("interval_seconds: 0", "sso.device_flow.interval_seconds", "out of range"),
    ("code_lifetime_seconds: 5", "sso.device_flow.code_lifetime_seconds", "out of range"),
    ("key_duration: 1 week", "sso.device_flow.key_duration", "is not a duration"),
    ("key_duration: 0d", "sso.device_flow.key_duration", "is not a duration"),
    ("budget_duration: monthly", "sso.device_flow.budget_duration", "is not a duration"),
    ("verification_uri: /sso/device", "sso.device_flow.verification_uri", "absolute http(s) URL"),
    ("max_budget: -1", "sso.device_flow.max_budget", "out of range"),
    ("models: ['']", "sso.device_flow.models", "empty model name"),
    ("enabled: maybe", "sso.device_flow.enabled", ""),
])
def test_bad_device_flow_values_are_one_line_naming_the_key(write, env, block, key, says):
    error = config_error(write(f"sso:\n  device_flow:\n    {block}\n"), env)
    assert error.key == key
    assert says in error.problem
