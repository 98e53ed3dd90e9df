"""Response cache: identical non-streaming requests answered without calling upstream.

Configured as LiteLLM configures it::

    litellm_settings:
      cache: true
      cache_params: {type: redis, ttl: 600, namespace: prod}   # type: redis | local

`redis` uses cache_params' url/host/port/password when given, else llmur's own Redis; `local` is an
in-process LRU (one copy per worker). Requests are identical when their call type, model group and
every parameter except the router's own and the cache controls (see EXCLUDED_FIELDS) are equal:
the key is a SHA-256 of the canonical (sorted-keys) JSON of those.

Per request, the body field LiteLLM accepts, `cache: {"no-cache": true, "no-store": true,
"ttl": 60, "s-maxage": 30}`, or a `Cache-Control: no-cache` / `no-store` header.

The pipeline looks up after authorization, so a key only ever gets cached answers of models its
allow-list admits. A hit sets ctx.cache_hit (the spend record marks it), leaves ctx.usage at zero
so it is billed 0 (the original usage is in ctx.cached_usage), and sets the header
`x-llmur-cache-hit: true`. If the cache store is unreachable, requests go upstream as if uncached.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import orjson

from gateway.context import RequestContext, Usage
from gateway.routing.fallbacks import request_options
from llmur.core import metrics
from llmur.core.errors import LlmurError
from llmur.core.lifespan import on_shutdown
from llmur.core.redis import async_redis, close_async

logger = logging.getLogger("llmur.cache")

HIT_HEADER = "x-llmur-cache-hit"
DEFAULT_TTL = 600
LOCAL_MAX_ENTRIES = 10_000
# Fields that do not change the answer (stream handling, routing, bookkeeping, cache control).
EXCLUDED_FIELDS = frozenset({"stream", "stream_options", "cache", "metadata", "fallbacks",
                             "context_window_fallbacks", "content_policy_fallbacks", "num_retries"})
# LiteLLM's supported_call_types names → llmur's call types.
_CALL_TYPES = {"completion": "chat", "acompletion": "chat", "text_completion": "completion",
               "atext_completion": "completion", "embedding": "embedding", "aembedding": "embedding",
               "anthropic_messages": "messages"}


@dataclass(slots=True, frozen=True)
class CacheControl:
    """What one request asked of the cache."""

    no_cache: bool = False      # do not answer from the cache
    no_store: bool = False      # do not store this answer
    ttl: float | None = None    # store for this long instead of the default
    s_maxage: float | None = None  # accept only entries younger than this


class LocalBackend:
    """In-process LRU with expiry, for `type: local`."""

    def __init__(self, max_entries: int = LOCAL_MAX_ENTRIES) -> None:
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        self._entries[key] = (time.monotonic() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()


class RedisBackend:
    """Entries as Redis strings with a TTL; one client per event loop."""

    def __init__(self, url: str) -> None:
        self._url = url

    def _redis(self):
        return async_redis("cache", url=self._url)

    async def get(self, key: str) -> bytes | None:
        return await self._redis().get(key)

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        await self._redis().set(key, value, px=max(1, int(ttl * 1000)))

    async def close(self) -> None:
        await close_async("cache")


class ResponseCache:
    """The configured cache: a backend, a default TTL, a key namespace and the call types it serves."""

    def __init__(self, backend: LocalBackend | RedisBackend, *, ttl: float = DEFAULT_TTL, namespace: str = "",
                 call_types: frozenset[str] | None = None) -> None:
        self.backend, self.ttl, self.call_types = backend, ttl, call_types
        self.prefix = f"llmur:respcache:{namespace}:" if namespace else "llmur:respcache:"
        self._pending: set[asyncio.Task] = set()
        self._warned_at = 0.0

    def key(self, ctx: RequestContext) -> str:
        """SHA-256 of the canonical JSON of call type, model group and the answer-shaping parameters."""
        params = {k: v for k, v in ctx.body.items() if k not in EXCLUDED_FIELDS}
        params["model"] = ctx.model
        canonical = orjson.dumps({"call": ctx.call_type, "params": params}, option=orjson.OPT_SORT_KEYS)
        return self.prefix + hashlib.sha256(canonical).hexdigest()

    def serves(self, ctx: RequestContext) -> bool:
        return not ctx.stream and (self.call_types is None or ctx.call_type in self.call_types)

    async def lookup(self, ctx: RequestContext, control: CacheControl) -> bytes | None:
        """The cached answer body for this request, marking ctx as a hit; None on a miss."""
        key = self.key(ctx)
        ctx.cache_entry = (key, control)
        if control.no_cache:
            return None
        try:
            raw = await self.backend.get(key)
        except Exception as exc:  # noqa: BLE001 - the cache is an optimisation; go upstream
            self._warn(exc)
            return None
        if raw is None:
            return None
        entry = orjson.loads(raw)
        if control.s_maxage is not None and time.time() - entry["t"] > control.s_maxage:
            return None
        ctx.cache_hit = True
        # ctx.usage stays zero so the spend record bills nothing; the tokens the answer once cost
        # are kept beside it for reports.
        ctx.cached_usage = Usage(entry["u"][0], entry["u"][1])
        ctx.response_headers[HIT_HEADER] = "true"
        return entry["b"].encode()

    def store(self, ctx: RequestContext, body: bytes) -> None:
        """Keep a successful answer, without making the client wait for the write."""
        pending = ctx.cache_entry
        if pending is None or ctx.cache_hit or ctx.http_status != 200:
            return
        key, control = pending
        if control.no_store:
            return
        ttl = control.ttl if control.ttl is not None else self.ttl
        if ttl <= 0:
            return
        value = orjson.dumps({"b": body.decode(), "t": time.time(),
                              "u": [ctx.usage.prompt_tokens, ctx.usage.completion_tokens]})
        task = asyncio.get_running_loop().create_task(self._set(key, value, ttl))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait for writes still on their way (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
        await self.backend.close()

    async def _set(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self.backend.set(key, value, ttl)
        except Exception as exc:  # noqa: BLE001
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        if time.monotonic() - self._warned_at > 10:
            self._warned_at = time.monotonic()
            logger.warning("response cache unreachable (%s); requests go upstream uncached", exc.__class__.__name__)


def cache_control(body: dict[str, Any], headers: Mapping[str, str] | None = None) -> CacheControl:
    """Pop the body's `cache` field and read Cache-Control; a malformed field is a 400 naming it."""
    raw = body.pop("cache", None)
    header = ((headers or {}).get("cache-control") or "").lower()
    if raw is None and not header:
        return CacheControl()
    if raw is not None and not isinstance(raw, dict):
        raise _bad("cache", 'expected an object such as {"no-cache": true, "ttl": 600}')
    raw = raw or {}
    for flag in ("no-cache", "no-store"):
        if flag in raw and not isinstance(raw[flag], bool):
            raise _bad(f"cache.{flag}", "expected true or false")
    numbers = {}
    for name in ("ttl", "s-maxage"):
        value = raw.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise _bad(f"cache.{name}", "expected a number of seconds, 0 or more")
        numbers[name] = float(value) if value is not None else None
    directives = {d.strip() for d in header.split(",")}
    return CacheControl(no_cache=bool(raw.get("no-cache")) or "no-cache" in directives,
                        no_store=bool(raw.get("no-store")) or "no-store" in directives,
                        ttl=numbers["ttl"], s_maxage=numbers["s-maxage"])


def _bad(param: str, problem: str) -> LlmurError:
    return LlmurError(400, "invalid_request_error", f"Invalid '{param}': {problem}.", param=param)


def build_cache(litellm_settings: Mapping[str, Any], *, redis_url: str | None) -> ResponseCache | None:
    """The cache litellm_settings asks for, or None when caching is off."""
    if not litellm_settings.get("cache"):
        return None
    params = litellm_settings.get("cache_params") or {}
    kind = str(params.get("type") or ("redis" if redis_url else "local")).lower()
    if kind == "redis":
        url = params.get("url") or params.get("redis_url") or _url_from_parts(params) or redis_url
        if not url:
            logger.warning("litellm_settings.cache_params.type is redis but no Redis is configured; "
                           "using an in-process cache")
            backend: LocalBackend | RedisBackend = LocalBackend()
        else:
            backend = RedisBackend(url)
    elif kind in ("local", "in-memory", "memory"):
        backend = LocalBackend()
    else:
        logger.warning("litellm_settings.cache_params.type %r is not supported (expected redis or local); "
                       "response cache disabled", kind)
        return None
    call_types = params.get("supported_call_types")
    return ResponseCache(
        backend, ttl=float(params.get("ttl") or DEFAULT_TTL), namespace=str(params.get("namespace") or ""),
        call_types=frozenset(_CALL_TYPES.get(t, t) for t in call_types) if call_types else None)


def _url_from_parts(params: Mapping[str, Any]) -> str | None:
    if not params.get("host"):
        return None
    password = params.get("password")
    auth = f":{password}@" if password else ""
    return f"redis://{auth}{params['host']}:{params.get('port') or 6379}/{params.get('db') or 0}"


_cache: ResponseCache | None = None
_built = False


def get_cache() -> ResponseCache | None:
    """This process's response cache, built from settings on first use; None when caching is off."""
    global _cache, _built
    if not _built:
        from django.conf import settings

        llmur = settings.LLMUR
        _cache = build_cache(llmur.config.litellm_settings,
                             redis_url=llmur.cache.url if llmur.cache.engine == "redis" else None)
        _built = True
    return _cache


async def close_cache() -> None:
    global _cache, _built
    if _cache is not None:
        await _cache.close()
    _cache, _built = None, False


async def cache_lookup(ctx: RequestContext, cache_control_header: str | None = None) -> bytes | None:
    """The pipeline's cache step (after authorization and limits): a cached answer body, or None."""
    cache = get_cache()
    if cache is None or not cache.serves(ctx):
        return None
    request_options(ctx)            # the router's body fields: validated even when the answer is cached
    headers = {"cache-control": cache_control_header} if cache_control_header else None
    hit = await cache.lookup(ctx, cache_control(ctx.body, headers))
    metrics.cache_looked_up(ctx, hit is not None)
    return hit


def cache_store(ctx: RequestContext, body: bytes) -> None:
    """Keep a fresh successful answer for identical requests to come (not awaited)."""
    cache = get_cache()
    if cache is not None:
        cache.store(ctx, body)


@on_shutdown
async def _close_on_shutdown() -> None:
    await close_cache()
