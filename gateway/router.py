"""The route → call step of the pipeline: which deployment answers, with retries, cooldowns and fallbacks.

The pipeline hands over an `attempt(deployment)` coroutine that makes one upstream call (returning
once the upstream accepted it; for a stream, once its first part is in hand), a lookup of model
groups and the key's allow-list. gateway.routing.engine runs LiteLLM's router semantics over them;
see that module and docs/routing.md. Contract:

  * ``await route(ctx, attempt, group=lookup, allowed=may_use)`` returns what the successful
    attempt returned, or raises the LlmurError the client should see. ctx.deployment,
    deployment_id and provider name the deployment that answered (or failed last);
    ctx.request_id is the same for every attempt.
  * ``release(ctx)`` once the answer is finished (the pipeline's settle step): frees the in-flight
    slot and records latency and tokens for the strategies. Idempotent; a no-op without route().
"""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, TypeVar

from django.conf import settings

from gateway import registry
from gateway.context import RequestContext
from gateway.routing import litellm_headers
from gateway.routing.engine import Router, RouterConfig
from gateway.routing.state import close_state
from gateway.routing.unpriced import refuse_unpriced
from llmur.core.lifespan import on_shutdown, on_startup

logger = logging.getLogger("llmur.router")

T = TypeVar("T")

_router: Router | None = None


def get_router() -> Router:
    """This process's router, configured from router_settings on first use."""
    global _router
    if _router is None:
        warnings: list[str] = []
        _router = Router(RouterConfig.from_settings(settings.LLMUR.config, warnings))
        for warning in warnings:
            logger.warning("llmur: config warning in %s: %s", settings.LLMUR.source, warning)
    return _router


async def route(ctx: RequestContext, attempt: Callable[[Any], Awaitable[T]], *,
                group: Callable[[str], Awaitable[tuple[registry.Deployment, ...]]],
                allowed: Callable[[str], bool] | None = None) -> T:
    """Run `attempt` on the deployments of ctx.model (then of its fallbacks) until one answers.

    `group(model)` returns a model group's deployments; `allowed(model)` says whether the key may use
    a fallback group. A wildcard group the caller may not be charged for is refused
    (gateway.routing.unpriced). The x-litellm-* headers of what happened go to ctx.response_headers,
    on success and failure alike.
    """
    async def priced_group(model: str) -> tuple[registry.Deployment, ...]:
        deployments = await group(model)
        refuse_unpriced(ctx, model, deployments)
        return deployments

    try:
        return await get_router().route(ctx, attempt, group=priced_group, allowed=allowed)
    finally:
        ctx.response_headers.update(litellm_headers.response_headers(ctx))


def release(ctx: RequestContext) -> None:
    get_router().release(ctx)


@on_shutdown
async def close_router() -> None:
    await close_state()


@on_startup
async def open_router() -> None:
    # Built at start, so a malformed fallback list is reported when the server starts.
    get_router()
