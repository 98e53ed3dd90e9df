"""The retry/cooldown/fallback loop against the fake provider and real Redis (no gateway server).

The attempt function here does what the pipeline's does: POST to the deployment, map an error
answer to LlmurError. Server-level behaviour is covered in test_gateway_routing.py.
"""
from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from gateway.context import RequestContext
from gateway.registry import Deployment
from gateway.routing.engine import Router, RouterConfig
from gateway.routing.local_state import LocalState
from gateway.routing.redis_state import RedisState
from llmur.core.errors import LlmurError


def deployment(name: str, model: str, upstream, **params) -> Deployment:
    return Deployment(id=name, model_name=params.pop("group", "g"), provider="openai", model=model,
                      api_base=upstream.url + "/v1", **params)


def _post(dep: Deployment) -> dict:
    request = urllib.request.Request(dep.api_base + "/chat/completions", method="POST",
                                     data=json.dumps({"model": dep.model, "messages": []}).encode(),
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        error = json.load(exc)["error"]
        status = 502 if exc.code >= 500 else exc.code
        raise LlmurError(status, error["type"], error["message"], code=error.get("code"),
                         headers={"retry-after": exc.headers.get("retry-after")} if exc.headers.get("retry-after")
                         else {}) from None


async def attempt(dep: Deployment) -> dict:
    return await asyncio.to_thread(_post, dep)


def serve(router: Router, groups: dict[str, tuple[Deployment, ...]], n: int, *, model: str = "g",
          body: dict | None = None, allowed=None):
    """Send n requests through the router; returns (answers or errors, the contexts)."""
    async def lookup(name):
        return groups.get(name, ())

    async def one(i):
        ctx = RequestContext(request_id=f"r{i}", call_type="chat", model=model, body=dict(body or {}))
        try:
            result = await router.route(ctx, attempt, group=lookup, allowed=allowed)
        except LlmurError as error:
            result = error
        router.release(ctx)
        return result, ctx

    async def all_():
        results = [await one(i) for i in range(n)]
        await router.state.close()
        return results

    return asyncio.run(all_())


@pytest.fixture(params=["local", "redis"])
def state(request):
    if request.param == "local":
        return LocalState()
    request.getfixturevalue("redis_client")
    return RedisState(request.getfixturevalue("redis_url"))


def test_failing_deployment_is_retried_elsewhere_then_cooled_down(fake_provider, state):
    fake_provider.reset()
    group = (deployment("bad", "mock-500", fake_provider), deployment("good", "ok", fake_provider))
    router = Router(RouterConfig(num_retries=2, allowed_fails=2, cooldown_time=60), state=state)
    results = serve(router, {"g": group}, 40)
    assert all(isinstance(answer, dict) for answer, _ in results)
    assert {ctx.deployment_id for _, ctx in results} == {"good"}
    # allowed_fails=2: the third failure cools it down, after which it gets nothing.
    assert fake_provider.stats()["by_model"].get("mock-500") == 3


def test_only_deployment_is_never_cooled_down(fake_provider, state):
    fake_provider.reset()
    router = Router(RouterConfig(num_retries=0, allowed_fails=0, cooldown_time=60), state=state)
    results = serve(router, {"g": (deployment("bad", "mock-500", fake_provider),)}, 3)
    assert [answer.status for answer, _ in results] == [502, 502, 502]
    assert fake_provider.stats()["by_model"]["mock-500"] == 3


def test_fallback_after_every_deployment_failed(fake_provider, state):
    fake_provider.reset()
    groups = {"g": (deployment("a", "mock-429", fake_provider), deployment("b", "mock-500", fake_provider)),
              "backup": (deployment("c", "ok", fake_provider, group="backup"),)}
    config = RouterConfig(num_retries=1, allowed_fails=10, fallbacks={"fallbacks": {"g": ["backup"]}})
    (answer, ctx), = serve(Router(config, state=state), groups, 1)
    assert isinstance(answer, dict)
    assert ctx.deployment_id == "c" and ctx.route.fallback_model == "backup"
    assert fake_provider.stats()["by_model"] == {"mock-429": 1, "mock-500": 1, "ok": 1}


def test_context_window_fallback_on_context_length_error(fake_provider, state):
    fake_provider.reset()
    groups = {"g": (deployment("small", "mock-400", fake_provider),),
              "big": (deployment("large", "ok", fake_provider, group="big"),),
              "other": (deployment("other", "ok", fake_provider, group="other"),)}
    config = RouterConfig(num_retries=2, fallbacks={"context_window_fallbacks": {"g": ["big"]},
                                                    "fallbacks": {"g": ["other"]}})
    (answer, ctx), = serve(Router(config, state=state), groups, 1)
    assert ctx.deployment_id == "large"
    # A client error is not retried on the same group.
    assert fake_provider.stats()["by_model"] == {"mock-400": 1, "ok": 1}


def test_client_error_without_its_fallback_list_is_returned_as_is(fake_provider, state):
    groups = {"g": (deployment("small", "mock-400", fake_provider),), "other": (deployment("o", "ok", fake_provider),)}
    config = RouterConfig(fallbacks={"fallbacks": {"g": ["other"]}})
    (answer, ctx), = serve(Router(config, state=state), groups, 1)
    assert answer.status == 400 and answer.code == "context_length_exceeded"


def test_request_fallbacks_and_allow_list(fake_provider, state):
    fake_provider.reset()
    groups = {"g": (deployment("bad", "mock-500", fake_provider),),
              "secret": (deployment("s", "ok", fake_provider, group="secret"),),
              "open": (deployment("o", "ok-open", fake_provider, group="open"),)}
    (answer, ctx), = serve(Router(RouterConfig(num_retries=0), state=state), groups, 1,
                           body={"fallbacks": ["secret", "open"]}, allowed=lambda m: m != "secret")
    assert ctx.deployment_id == "o"
    assert "fallbacks" not in ctx.body
    assert "ok" not in fake_provider.stats()["by_model"]


def test_all_fallbacks_failing_returns_the_original_error_naming_them(fake_provider, state):
    groups = {"g": (deployment("a", "mock-500", fake_provider),), "b": (deployment("b", "mock-429", fake_provider),)}
    config = RouterConfig(num_retries=0, fallbacks={"fallbacks": {"g": ["b"]}})
    (answer, ctx), = serve(Router(config, state=state), groups, 1)
    assert answer.status == 502
    assert "fallbacks tried: b" in answer.message


def test_deployment_max_retries_caps_repeat_attempts(fake_provider, state):
    fake_provider.reset()
    group = (deployment("bad", "mock-500", fake_provider, max_retries=1),)
    (answer, _), = serve(Router(RouterConfig(num_retries=5), state=state), {"g": group}, 1)
    assert answer.status == 502
    assert fake_provider.stats()["by_model"]["mock-500"] == 2


def test_content_policy_fallback(fake_provider, state):
    """A content-policy refusal (the mock has no such fault, so this attempt raises what a provider sends)."""
    groups = {"g": (deployment("strict", "strict", fake_provider),),
              "lenient": (deployment("lenient", "ok", fake_provider, group="lenient"),)}

    async def refusing(dep: Deployment) -> dict:
        if dep.id == "strict":
            raise LlmurError(400, "invalid_request_error", "The response was filtered due to the prompt "
                             "triggering content management policy.", code="content_filter")
        return await attempt(dep)

    router = Router(RouterConfig(fallbacks={"content_policy_fallbacks": {"g": ["lenient"]}}), state=state)

    async def scenario():
        async def lookup(name):
            return groups.get(name, ())
        ctx = RequestContext(request_id="r", call_type="chat", model="g", body={})
        result = await router.route(ctx, refusing, group=lookup)
        router.release(ctx)
        await router.state.close()
        return result, ctx

    result, ctx = asyncio.run(scenario())
    assert ctx.deployment_id == "lenient" and ctx.request_id == "r"
    assert result["choices"]
