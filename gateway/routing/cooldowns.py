"""Which upstream failures count against a deployment, and when it is taken out of rotation.

LiteLLM's semantics: a deployment that fails more than `allowed_fails` times within a minute gets
no traffic for `cooldown_time` seconds, on every worker (the count and the cooldown set live in
Redis, see state.py). Only failures that say something about the deployment count: rate limits,
timeouts, server errors (the gateway maps upstream 401/403, i.e. a deployment's wrong credentials,
to 502 too). A client's bad request (400, context too long, content policy, 404 unknown upstream
model) is passed through and not counted. The only deployment of a group is never cooled down:
that would turn a blip into an outage.
"""
from __future__ import annotations

from llmur.core.errors import LlmurError

# Statuses below 500 that count as the deployment's failure (and are worth retrying elsewhere).
DEPLOYMENT_FAILURE_STATUSES = frozenset({408, 409, 429})


def is_deployment_failure(error: LlmurError) -> bool:
    """True when the error is the deployment's fault: retry elsewhere and count it toward a cooldown."""
    return (error.retryable or error.status >= 500
            or error.status in DEPLOYMENT_FAILURE_STATUSES)


def may_cool_down(group_size: int) -> bool:
    return group_size > 1


def retry_after_seconds(error: LlmurError) -> float | None:
    """The upstream's Retry-After, when it sent a usable one (seconds, at most a minute)."""
    raw = error.headers.get("Retry-After") or error.headers.get("retry-after")
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value <= 60 else None
