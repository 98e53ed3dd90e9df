"""The `sso:` block: agent sign-in through the OAuth 2.0 device authorization grant (RFC 8628).

Off by default. The operator chooses how long a code lives, how often agents may poll, and what
every key it issues gets: its life and limits (inside those of the scope the approver picks).
docs/agent-sign-in.md describes the flow.
"""
from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

# As accounts.durations reads them (config may not import accounts): a number and a unit.
DURATION = re.compile(r"[0-9]+[smhd]")
DURATION_EXAMPLES = "30m, 12h, 1d, 30d"


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _duration(value: str, *, empty_ok: bool) -> str:
    value = (value or "").strip()
    if not value and empty_ok:
        return value
    if not DURATION.fullmatch(value) or int(value[:-1]) == 0:
        raise ValueError(f"{value!r} is not a duration (expected a number and a unit: {DURATION_EXAMPLES})")
    return value


class DeviceFlowConfiguration(_Section):
    """POST /sso/device/code and /sso/device/token, and the page at /sso/device where a person approves."""

    enabled: bool = False
    # How long a device_code and its user_code stay valid (RFC 8628 expires_in).
    code_lifetime_seconds: int = Field(default=600, ge=60, le=3600)
    # The least time between two polls of one device_code; polling faster answers slow_down.
    interval_seconds: int = Field(default=5, ge=2, le=60)
    # Wrong user codes one signed-in person (or one address) may enter in 15 minutes (RFC 8628 5.1).
    max_user_code_attempts: int = Field(default=10, ge=1, le=100)
    # Codes one client address may request in an hour.
    max_codes_per_address: int = Field(default=60, ge=1, le=10_000)
    # The page's public address when llmur sits behind a proxy that rewrites it; default: the request's.
    verification_uri: str | None = None
    # What every issued key gets; it must fit inside the approver's chosen scope.
    key_duration: str = "30d"
    models: list[str] = Field(default_factory=list, description="allowed models; empty: those of the scope")
    max_budget: Decimal | None = Field(default=None, ge=0)
    budget_duration: str = ""
    rpm_limit: int | None = Field(default=None, ge=1)
    tpm_limit: int | None = Field(default=None, ge=1)
    max_parallel_requests: int | None = Field(default=None, ge=1)

    @field_validator("key_duration")
    @classmethod
    def _key_duration(cls, value: str) -> str:
        return _duration(value, empty_ok=False)

    @field_validator("budget_duration")
    @classmethod
    def _budget_duration(cls, value: str) -> str:
        return _duration(value, empty_ok=True)

    @field_validator("verification_uri")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{value!r} is not an absolute http(s) URL (expected e.g. "
                             "https://llm.example.com/sso/device)")
        return value.rstrip("/")

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: list[str]) -> list[str]:
        if any(not isinstance(name, str) or not name.strip() for name in value):
            raise ValueError("an empty model name (expected model names, e.g. [gpt-4o-mini])")
        return [name.strip() for name in value]


class SsoConfiguration(_Section):
    device_flow: DeviceFlowConfiguration = Field(default_factory=DeviceFlowConfiguration)
