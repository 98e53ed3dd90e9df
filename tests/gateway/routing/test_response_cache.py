"""Response cache: keys, per-request control and both backends (real Redis)."""
from __future__ import annotations

import asyncio

import pytest

from gateway.context import RequestContext, Usage
from gateway.response_cache import HIT_HEADER, CacheControl, build_cache, cache_control
from llmur.core.errors import LlmurError


def ctx_for(body: dict, *, model: str = "gpt-x", stream: bool = False, call_type: str = "chat") -> RequestContext:
    return RequestContext(request_id="req-1", call_type=call_type, model=model, body=dict(body), stream=stream)


MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["local", "redis"])
def cache(request):
    if request.param == "local":
        return build_cache({"cache": True, "cache_params": {"type": "local", "ttl": 60}}, redis_url=None)
    request.getfixturevalue("redis_client")
    return build_cache({"cache": True, "cache_params": {"type": "redis", "namespace": "t"}},
                       redis_url=request.getfixturevalue("redis_url"))


def roundtrip(cache, first: RequestContext, second: RequestContext, control: CacheControl = CacheControl(),
              body: bytes = b'{"id":"a"}'):
    async def scenario():
        assert await cache.lookup(first, CacheControl()) is None
        first.usage.prompt_tokens, first.usage.completion_tokens = 3, 7
        cache.store(first, body)
        await cache.flush()
        hit = await cache.lookup(second, control)
        await cache.backend.close()
        return hit

    return asyncio.run(scenario())


def test_identical_request_is_served_from_cache_and_marked(cache):
    second = ctx_for({"model": "gpt-x", "messages": MESSAGES, "temperature": 0})
    hit = roundtrip(cache, ctx_for({"model": "gpt-x", "temperature": 0, "messages": MESSAGES}), second)
    assert hit == b'{"id":"a"}'
    assert second.cache_hit is True
    assert second.response_headers[HIT_HEADER] == "true"
    assert second.usage.total_tokens == 0          # billed nothing
    assert second.cached_usage == Usage(prompt_tokens=3, completion_tokens=7)


@pytest.mark.parametrize("change", [
    {"temperature": 1}, {"messages": [{"role": "user", "content": "hello"}]}, {"max_tokens": 5}, {"user": "u2"},
])
def test_a_different_parameter_misses(cache, change):
    base = {"model": "gpt-x", "messages": MESSAGES, "temperature": 0, "user": "u1"}
    second = ctx_for(base | change)
    assert roundtrip(cache, ctx_for(base), second) is None
    assert second.cache_hit is False


def test_other_model_group_or_call_type_misses(cache):
    body = {"model": "gpt-x", "messages": MESSAGES}
    assert roundtrip(cache, ctx_for(body), ctx_for(body, model="gpt-y")) is None
    other = {"model": "gpt-x", "messages": [{"role": "user", "content": "another"}]}
    assert roundtrip(cache, ctx_for(other), ctx_for(other, call_type="messages")) is None


def test_router_and_cache_fields_do_not_change_the_key(cache):
    body = {"model": "gpt-x", "messages": MESSAGES}
    second = ctx_for(body | {"fallbacks": ["other"], "metadata": {"tag": "x"}, "num_retries": 1})
    assert roundtrip(cache, ctx_for(body), second) == b'{"id":"a"}'


def test_no_cache_bypasses_the_lookup(cache):
    body = {"model": "gpt-x", "messages": MESSAGES}
    second = ctx_for(body)
    assert roundtrip(cache, ctx_for(body), second, CacheControl(no_cache=True)) is None
    assert second.cache_hit is False


def test_no_store_and_zero_ttl_keep_nothing(cache):
    async def scenario():
        for control in (CacheControl(no_store=True), CacheControl(ttl=0)):
            ctx = ctx_for({"messages": MESSAGES})
            await cache.lookup(ctx, control)
            cache.store(ctx, b"{}")
        await cache.flush()
        hit = await cache.lookup(ctx_for({"messages": MESSAGES}), CacheControl())
        await cache.backend.close()
        return hit

    assert asyncio.run(scenario()) is None


def test_per_request_ttl_expires_the_entry(cache):
    async def scenario():
        # One second for a store and a lookup, however loaded the machine; the wait past it is
        # a lower bound, so the entry has expired by then.
        ctx = ctx_for({"messages": MESSAGES})
        await cache.lookup(ctx, CacheControl(ttl=1))
        cache.store(ctx, b"{}")
        await cache.flush()
        soon = await cache.lookup(ctx_for({"messages": MESSAGES}), CacheControl())
        await asyncio.sleep(1.1)
        late = await cache.lookup(ctx_for({"messages": MESSAGES}), CacheControl())
        await cache.backend.close()
        return soon, late

    assert asyncio.run(scenario()) == (b"{}", None)


def test_failed_answers_and_streams_are_not_cached(cache):
    ctx = ctx_for({"messages": MESSAGES})
    ctx.http_status = 502
    assert roundtrip(cache, ctx, ctx_for({"messages": MESSAGES})) is None
    assert cache.serves(ctx_for({"messages": MESSAGES}, stream=True)) is False


def test_unreachable_redis_means_uncached_not_failed():
    cache = build_cache({"cache": True, "cache_params": {"type": "redis", "host": "127.0.0.1", "port": 1}},
                        redis_url=None)
    assert roundtrip(cache, ctx_for({"messages": MESSAGES}), ctx_for({"messages": MESSAGES})) is None


def test_cache_control_from_body_and_header():
    body = {"messages": MESSAGES, "cache": {"no-cache": True, "ttl": 30}}
    assert cache_control(body) == CacheControl(no_cache=True, ttl=30.0)
    assert "cache" not in body
    assert cache_control({}, {"cache-control": "no-cache, no-store"}) == CacheControl(no_cache=True, no_store=True)
    assert cache_control({}) == CacheControl()


@pytest.mark.parametrize("value,param", [
    ("yes", "cache"), ({"no-cache": "yes"}, "cache.no-cache"), ({"ttl": -1}, "cache.ttl"),
])
def test_malformed_cache_field_is_a_400_naming_it(value, param):
    with pytest.raises(LlmurError) as caught:
        cache_control({"cache": value})
    assert caught.value.status == 400 and caught.value.param == param
    assert param in caught.value.message


def test_cache_off_unless_configured():
    assert build_cache({}, redis_url="redis://127.0.0.1:6379/8") is None
    assert build_cache({"cache": True, "cache_params": {"type": "s3"}}, redis_url=None) is None
