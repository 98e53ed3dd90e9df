"""LiteLLM's routing headers: `x-litellm-timeout` read from the request, `x-litellm-*` written on the answer.

In: `x-litellm-timeout: SECONDS` lowers the upstream timeout of this request; it is capped at the
deployment's own timeout (stream_timeout for streams), so a client can shorten a call but never hold
an upstream connection longer than the operator allows. The /v1 handlers read it
(`client_timeout_from`) into a context variable the router reads, so the pipeline carries nothing.

Out, beside llmur's own `x-llmur-*` and on errors too: `x-litellm-model-id` (the deployment that
answered or failed last), `x-litellm-model-group`, `x-litellm-attempted-retries` (attempts in the
last model group tried, minus one), `x-litellm-max-retries`, `x-litellm-timeout` (the timeout in
force for the last attempt, in seconds as a float: "1.0"), `x-litellm-call-id` (the request id),
and `x-litellm-key-spend` (USD, settled before this request) when admission read the key's spend:
for keys with a budget or soft budget, with Redis.
"""
from __future__ import annotations

import contextvars
import dataclasses
import math
from typing import Any

TIMEOUT_HEADER = "HTTP_X_LITELLM_TIMEOUT"

client_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("llmur_client_timeout", default=None)


def client_timeout_from(meta: dict[str, Any]) -> float | None:
    """The request's x-litellm-timeout in seconds, or None when absent or not a positive number."""
    raw = meta.get(TIMEOUT_HEADER)
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def with_client_timeout(deployment: Any, seconds: float | None) -> Any:
    """The deployment with its timeouts lowered to the client's, never raised."""
    if seconds is None or deployment is None:
        return deployment
    timeout, stream_timeout = min(seconds, deployment.timeout), min(seconds, deployment.stream_timeout)
    if timeout == deployment.timeout and stream_timeout == deployment.stream_timeout:
        return deployment
    return dataclasses.replace(deployment, timeout=timeout, stream_timeout=stream_timeout)


def response_headers(ctx: Any) -> dict[str, str]:
    """The x-litellm-* headers for what the router did with this request."""
    route = ctx.route
    headers = {"x-litellm-call-id": ctx.request_id}
    deployment = ctx.deployment
    if ctx.deployment_id:
        headers["x-litellm-model-id"] = ctx.deployment_id
    if deployment is not None:
        headers["x-litellm-model-group"] = str(route.group or ctx.model)
        seconds = deployment.stream_timeout if ctx.stream else deployment.timeout
        headers["x-litellm-timeout"] = str(float(seconds))
        region = (deployment.litellm_params or {}).get("region_name")
        if isinstance(region, str) and region:
            headers["x-litellm-model-region"] = region
    if route.group:
        headers["x-litellm-attempted-retries"] = str(max(0, route.attempts - 1))
    if route.max_retries is not None:
        headers["x-litellm-max-retries"] = str(route.max_retries)
    spend = ctx.key_spend
    if spend is not None:
        headers["x-litellm-key-spend"] = str(float(spend))
    return headers
