"""The route → call step: pick a deployment, call it, retry elsewhere, cool failing ones down, fall back.

LiteLLM's router semantics (router_settings):
  * each attempt goes to a healthy deployment of the group not yet tried in this request, chosen by
    routing_strategy; only when every healthy one was tried does a deployment get a second attempt
    (at most its own `max_retries` times), after `retry_after` seconds or the upstream's Retry-After;
  * 1 + num_retries attempts per model group (the request may lower or raise it with `num_retries`);
  * a failure that is the deployment's fault (429, 408, 5xx, timeouts) counts toward its cooldown:
    more than allowed_fails within a minute → no traffic for cooldown_time seconds, on every worker;
  * after the group's attempts fail: `fallbacks` for those failures, `context_window_fallbacks` for
    context-length errors, `content_policy_fallbacks` for content-policy refusals; each fallback group
    gets the same attempts; a fallback the key may not use is skipped. The client's own error (any
    other 4xx) is returned at once, untried elsewhere;
  * the attempt function returns once the upstream accepted the call (a stream: its first chunk is in
    hand), so nothing is retried after the first byte reached the client;
  * ctx.request_id never changes; ctx.deployment / deployment_id / provider name the last attempt,
    so the response header and the spend record name the deployment that answered.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from gateway.context import RequestContext
from gateway.routing import fallbacks as fb
from gateway.routing import litellm_headers
from gateway.routing.cooldowns import is_deployment_failure, may_cool_down, retry_after_seconds
from gateway.routing.counters import NEEDS
from gateway.routing.state import get_state
from gateway.routing.strategies import CHOOSERS
from llmur.core.errors import LlmurError, shown

logger = logging.getLogger("llmur.router")

T = TypeVar("T")
MAX_RETRY_WAIT_S = 10.0


@dataclass(slots=True, frozen=True)
class RouterConfig:
    """router_settings (and the litellm_settings fallbacks LiteLLM also reads), resolved once."""

    strategy: str = "simple-shuffle"
    num_retries: int = 2
    retry_after: float = 0.0
    allowed_fails: int = 3
    cooldown_time: float = 5.0
    fallbacks: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def need(self) -> str | None:
        return NEEDS.get(self.strategy)

    @classmethod
    def from_settings(cls, config: Any, warnings: list[str] | None = None) -> "RouterConfig":
        """Resolve router_settings; a malformed litellm_settings fallback list is reported and ignored.

        (router_settings is validated with the rest of the file; litellm_settings is free-form.)
        """
        router, litellm = config.router_settings, config.litellm_settings or {}
        maps = {}
        for kind in fb.KINDS:
            merged = fb.parse_fallback_map(getattr(router, kind, None) or None, where=f"router_settings.{kind}")
            try:
                extra = fb.parse_fallback_map(litellm.get(kind), where=f"litellm_settings.{kind}")
            except LlmurError as error:
                if warnings is not None:
                    warnings.append(f"litellm_settings.{kind}: {error.message} It is ignored.")
                extra = {}
            for model, targets in extra.items():
                merged.setdefault(model, targets)
            maps[kind] = merged
        num_retries = router.num_retries
        if "num_retries" not in router.model_fields_set and isinstance(litellm.get("num_retries"), int):
            num_retries = litellm["num_retries"]
        return cls(strategy=router.routing_strategy, num_retries=num_retries, retry_after=router.retry_after,
                   allowed_fails=router.allowed_fails, cooldown_time=router.cooldown_time, fallbacks=maps)


@dataclass(slots=True)
class Flight:
    """What release() needs to close the books on the attempt that answered."""

    deployment_id: str
    need: str | None
    started: float
    answered: float | None = None     # when the attempt returned: a stream's first part is in hand
    released: bool = False


Group = tuple  # tuple[gateway.registry.Deployment, ...]
GroupLookup = Callable[[str], Awaitable[Group]]
Allowed = Callable[[str], bool]


class Router:
    """One per process; state is shared through gateway.routing.state."""

    def __init__(self, config: RouterConfig, *, state=None) -> None:
        self.config = config
        self._state = state

    @property
    def state(self):
        return self._state if self._state is not None else get_state()

    async def route(self, ctx: RequestContext, attempt: Callable[[Any], Awaitable[T]], *,
                    group: GroupLookup, allowed: Allowed | None = None) -> T:
        """Call `attempt(deployment)` on ctx.model's deployments, then its fallbacks, until one answers."""
        options = fb.request_options(ctx)
        primary = await group(ctx.model)
        retries = options.get("num_retries", _group_retries(primary, self.config.num_retries))
        ctx.route.max_retries = retries
        try:
            if options.get("mock_testing_fallbacks"):
                raise fb.mock_error(500, f"mock_testing_fallbacks: model '{shown(ctx.model)}' failed on purpose.")
            return await self._try_group(ctx, ctx.model, primary, attempt, retries)
        except LlmurError as error:
            kind = fb.error_kind(error)
            if kind == "fallbacks" and not is_deployment_failure(error):
                raise
            tried = []
            for model in fb.fallback_models(kind, ctx.model, configured=self.config.fallbacks.get(kind, {}),
                                            requested=options.get(kind)):
                if allowed is not None and not allowed(model):
                    continue
                deployments = await group(model)
                if not deployments:
                    continue
                tried.append(model)
                ctx.route.fallback_model = model
                overrides = options.get("fallback_overrides", {}).get(model)
                if overrides:
                    ctx.body = {**ctx.body, **overrides}
                try:
                    return await self._try_group(ctx, model, deployments, attempt, retries)
                except LlmurError as fallback_error:
                    logger.info("fallback %s for %s failed: %s", model, ctx.model, fallback_error.message)
            if tried:
                error.message = f"{error.message} (fallbacks tried: {', '.join(tried)})"
            raise error

    async def _try_group(self, ctx: RequestContext, model: str, group: Group,
                         attempt: Callable[[Any], Awaitable[T]], retries: int) -> T:
        if not group:
            raise LlmurError(404, "invalid_request_error", f"Model '{model}' has no deployments.", param="model",
                             code="model_not_found")
        state, need = self.state, self.config.need
        tried: dict[str, int] = defaultdict(int)
        last: LlmurError | None = None
        route = ctx.route
        route.group, route.attempts = model, 0
        options = ctx.router_options or {}
        client_timeout = litellm_headers.client_timeout.get()
        for number in range(1 + retries):
            deployment = await self._pick(ctx, model, group, tried)
            if deployment is None:
                break
            if tried[deployment.id] and last is not None:
                await asyncio.sleep(self._wait(last))
            tried[deployment.id] += 1
            route.attempts += 1
            deployment = litellm_headers.with_client_timeout(deployment, client_timeout)
            ctx.deployment, ctx.deployment_id, ctx.provider = deployment, deployment.id, deployment.provider
            ctx.flight = flight = Flight(deployment.id, need, time.monotonic())
            state.started(deployment.id, need)
            try:
                _raise_mock(ctx, options, deployment)
                result = await attempt(deployment)
                flight.answered = time.monotonic()
                return result
            except LlmurError as error:
                self._close(flight, ok=False)
                if not is_deployment_failure(error):
                    raise
                last = error
                if may_cool_down(len(group)) and not getattr(error, "mock", False):
                    cooled = await state.failed(deployment.id, allowed_fails=self.config.allowed_fails,
                                                cooldown_time=self.config.cooldown_time)
                    if cooled:
                        logger.warning("deployment %s of %s cooled down for %ss after repeated failures",
                                       deployment.id, model, self.config.cooldown_time)
                logger.info("attempt %d on %s (%s) failed: %s", number + 1, deployment.id, model, error.message)
            except BaseException:
                self._close(flight, ok=False)   # cancelled (client left) or a bug: release the slot
                raise
        if last is None:
            raise self._none_available(model)
        raise last

    async def _pick(self, ctx: RequestContext, model: str, group: Group, tried: dict[str, int]):
        """The next deployment to try, or None when the group has none left for this request."""
        need = self.config.need if len(group) > 1 else None
        cooled, counters = await self.state.read([d.id for d in group], need)
        healthy = [d for d in group if d.id not in cooled]
        candidates = [d for d in healthy if not tried.get(d.id)]
        if not candidates:
            # Every healthy deployment was tried: one may be tried again, up to its own max_retries.
            candidates = [d for d in healthy if d.max_retries is None or tried.get(d.id, 0) <= d.max_retries]
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        chosen = CHOOSERS.get(self.config.strategy, CHOOSERS["simple-shuffle"])(candidates, counters,
                                                                                 stream=ctx.stream)
        if chosen is None:
            raise LlmurError(429, "rate_limit_error",
                             f"Every deployment of model '{model}' is at its rpm/tpm limit for this minute; "
                             "try again shortly.", code="429", headers={"Retry-After": str(60 - int(time.time()) % 60)})
        return chosen

    def _wait(self, last: LlmurError) -> float:
        upstream = retry_after_seconds(last) or 0.0
        return min(max(self.config.retry_after, upstream), MAX_RETRY_WAIT_S)

    def _none_available(self, model: str) -> LlmurError:
        wait = max(1, int(self.config.cooldown_time))
        return LlmurError(429, "rate_limit_error",
                          f"No deployments available for model '{model}': all are cooling down after failures. "
                          f"Try again in {wait} s.", code="429", headers={"Retry-After": str(wait)})

    def release(self, ctx: RequestContext) -> None:
        """Close the books on the answering attempt: in-flight slot, latency, tokens. Idempotent."""
        flight = ctx.flight
        if flight is not None:
            self._close(flight, ok=ctx.success, ctx=ctx)

    def _close(self, flight: Flight, *, ok: bool, ctx: RequestContext | None = None) -> None:
        if flight.released:
            return
        flight.released = True
        if flight.need is None:
            return
        latency = ttft = None
        tokens = 0
        if ctx is not None and ok:
            end = ctx.ended_monotonic or time.monotonic()
            latency = end - flight.started
            first = ctx.first_byte_monotonic or flight.answered
            if ctx.stream and first is not None:
                ttft = max(0.0, first - flight.started)
            tokens = ctx.usage.total_tokens
        self.state.finished(flight.deployment_id, flight.need, latency=latency, ttft=ttft, tokens=tokens)


def _group_retries(group: Group, default: int) -> int:
    """A deployment's own litellm_params num_retries (LiteLLM's per-model setting) over router_settings'."""
    own = [d.litellm_params.get("num_retries") for d in group]
    own = [n for n in own if isinstance(n, int) and not isinstance(n, bool) and n >= 0]
    return max(own) if own else default


def _raise_mock(ctx: RequestContext, options: dict[str, Any], deployment: Any) -> None:
    """LiteLLM's mock_timeout / mock_testing_rate_limit_error switches (see gateway.routing.fallbacks)."""
    if options.get("mock_timeout"):
        raise fb.mock_error(504, f"mock_timeout: deployment {deployment.id} timed out on purpose after "
                                 f"{deployment.timeout:g} s.", type_="timeout")
    if options.get("mock_testing_rate_limit_error") and not ctx.mock_rate_limited:
        ctx.mock_rate_limited = True
        raise fb.mock_error(429, "mock_testing_rate_limit_error: rate limited on purpose.", type_="rate_limit_error")
