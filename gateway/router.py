"""The route step: choose a deployment of the model group, call it, retry elsewhere on its failure.

A small, stateless stand-in with the router engine's interface (gateway.routing, issue 6), so
the engine replaces it without touching the pipeline:
  * ``await route(ctx, attempt, group=lookup, allowed=may_use)`` calls ``attempt(deployment)``
    until one answers; only retryable failures (429, 5xx, timeouts, connection errors) move on,
    each deployment is tried once, at most 1 + router_settings.num_retries attempts;
  * ``release(ctx)`` closes the books on the answering attempt (nothing to do here).
"""
from __future__ import annotations

import logging
import random
from typing import Any, Awaitable, Callable, Iterable, TypeVar

from django.conf import settings

from gateway.context import RequestContext
from gateway.errors import LlmurError
from gateway.registry import Deployment

logger = logging.getLogger("llmur.gateway.router")

T = TypeVar("T")


def choose(group: tuple[Deployment, ...], ctx: RequestContext, exclude: Iterable[str] = ()) -> Deployment | None:
    """simple-shuffle: a random deployment not yet tried, weighted by weight (else rpm) when given."""
    excluded = set(exclude)
    candidates = [d for d in group if d.id not in excluded]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    weights = [float(d.weight if d.weight is not None else (d.rpm or 1)) for d in candidates]
    if not any(weights):
        return random.choice(candidates)
    return random.choices(candidates, weights=weights, k=1)[0]


async def route(ctx: RequestContext, attempt: Callable[[Deployment], Awaitable[T]], *,
                group: Callable[[str], Awaitable[tuple[Deployment, ...]]],
                allowed: Callable[[str], bool] | None = None) -> T:
    deployments = await group(ctx.model)
    retries = settings.LLMUR.config.router_settings.num_retries
    tried: list[str] = []
    last: LlmurError | None = None
    while len(tried) <= retries:
        deployment = choose(deployments, ctx, tried)
        if deployment is None:
            break
        tried.append(deployment.id)
        ctx.deployment, ctx.deployment_id, ctx.provider = deployment, deployment.id, deployment.provider
        try:
            return await attempt(deployment)
        except LlmurError as error:
            if not getattr(error, "retryable", False):
                raise
            last = error
            logger.info("request %s: deployment %s failed (%s)", ctx.request_id, deployment.id, error.status)
    if last is None:
        raise LlmurError(503, "api_error", f"No deployment of model '{ctx.model}' is available right now.")
    raise last


def release(ctx: RequestContext) -> Any:
    return None
