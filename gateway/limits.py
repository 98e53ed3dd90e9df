"""Admission and settlement of each request against budgets and rate limits.

Contract with the pipeline (gateway/pipeline.py, gateway/settlement.py):
  * ``await admit(ctx)`` runs after authorization and before the upstream call. It raises
    LlmurError(429, ...) when a budget or limit refuses the request, else stores what it
    reserved in ctx.reservation.
  * ``await settle(ctx)`` runs exactly once for every admitted request, after the answer (or the
    failure, or the client's disconnect), with ctx.usage / ctx.http_status / ctx.success filled.
    It releases the reservation, books the real cost and records the spend event durably.

How (DESIGN.md, hot path steps 3 and 8):
  * With Redis, admission is one EVALSHA of lua/admit.lua: rpm (sliding one-minute log), tpm
    (per-minute counter), max_parallel_requests and budget headroom for the key, its user,
    project, team and organization and the deployment, and, only if all pass, the reservation
    of the request's estimated cost and of its parallel slot. Settlement is one EVALSHA of
    lua/settle.lua: release, book real cost and tokens, XADD the spend event to the stream that
    Celery drains into SpendLog (billing.queue). No database access on either path.
  * Budgets: Redis holds each entity's spend for the current period. A missing counter (first
    use, Redis restarted, budget reset) is rebuilt from the database plus the events still in
    the stream, then admission is retried. Admission passes while settled spend plus in-flight
    reservations is below max_budget, so concurrent requests overshoot by at most one
    reservation. soft_budget only warns: a log line and the response header
    ``x-llmur-budget-warning``.
  * Redis unreachable, cache_failure_policy fail_open: limits fall back to per-process counters
    with each limit divided by the number of workers (a budget's remaining headroom too), spend
    events go to the in-process batch writer (database, else a spool file). When Redis answers
    again the budget counters this process spent against are dropped, so they are rebuilt from
    the database. fail_closed: 503. Either way a log line, a metric and /health/readiness say so.
  * Embedded mode (cache engine local): the same per-process counters, undivided, and the same
    batch writer, which also runs budget resets and the daily rollup.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings

from billing import tokens
from billing.connections import (
    GROUP, KEY_PREFIX, STREAM, async_redis, budget_key, close_async, entity_ref, redis_configured,
)
from billing.lifecycle import budget_reset_listeners
from billing.pricing import (
    Price, budget_units, cost_of, estimate_cost_units, from_units, prices, to_units,
)
from billing.writer import writer
from gateway import registry
from gateway.context import RequestContext
from gateway.spend_event import event_from_context
from llmur.core.db import db_call
from llmur.core.errors import LlmurError
from llmur.core.health import readiness_check
from llmur.core.lifespan import on_shutdown, on_startup

logger = logging.getLogger("llmur.limits")

LUA_DIR = Path(__file__).resolve().parent / "lua"
# A parallel slot or budget reservation not settled within this time frees itself (a crashed
# process cannot leak capacity forever). Longer than any sane upstream timeout.
INFLIGHT_TTL_MS = 30 * 60 * 1000
RESERVATION_BUCKETS = 31            # one-minute buckets, covering INFLIGHT_TTL_MS
REDIS_RETRY_SECONDS = 1.0           # how long a failed Redis stays bypassed before the next probe
NEVER = 2**52                       # a "budget" no spend reaches (exact in Lua's doubles)

try:
    from prometheus_client import Counter

    DEGRADED_EVENTS = Counter("llmur_limits_degraded_total",
                              "Requests admitted or settled without Redis (per-process limits)", ["step"])
except ValueError:  # registered already (module reloaded in tests)
    DEGRADED_EVENTS = None


# --------------------------------------------------------------------------- entities

@dataclass(frozen=True, slots=True)
class Entity:
    """One thing that limits a request: a key, user, project, team, organization or deployment."""

    kind: str
    pk: Any
    label: str
    rpm: int = -1
    tpm: int = -1
    parallel: int = -1
    budget: int = -1                   # max_budget in 1e-8 USD
    soft: int = -1
    max_budget: Decimal | None = None
    soft_budget: Decimal | None = None

    @property
    def ref(self) -> str:
        return entity_ref(self.kind, self.pk)

    @property
    def tracked(self) -> bool:
        """Whether its spend is counted: it has a max_budget, or a soft_budget to warn about."""
        return self.budget >= 0 or self.soft >= 0

    @property
    def budget_arg(self) -> int:
        """max_budget for the admit script; a soft-only entity gets one it can never reach."""
        return self.budget if self.budget >= 0 else (NEVER if self.soft >= 0 else -1)

    @property
    def flags(self) -> str:
        return ("p" if self.parallel >= 0 else "") + ("b" if self.tracked else "") + ("t" if self.tpm >= 0 else "")


def _limit(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else -1


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _entities(ctx: RequestContext, deployment: Any = None) -> list[Entity]:
    found: list[Entity] = []
    principal = ctx.principal
    if principal is not None:
        end_user = (ctx.end_user_limits,) if ctx.end_user_limits is not None else ()
        for limits in (*principal.limits, *end_user):
            name = limits.name or (principal.alias or principal.display if limits.kind == "key" else "")
            label = f"{limits.kind} '{name}'" if name else f"{limits.kind} {limits.id}"
            entity = Entity(
                kind=limits.kind, pk=limits.id, label=label,
                rpm=_limit(limits.rpm_limit), tpm=_limit(limits.tpm_limit),
                parallel=_limit(limits.max_parallel_requests),
                budget=budget_units(limits.max_budget) if limits.max_budget is not None else -1,
                soft=budget_units(limits.soft_budget) if limits.soft_budget is not None else -1,
                max_budget=limits.max_budget, soft_budget=limits.soft_budget)
            if entity.rpm >= 0 or entity.tpm >= 0 or entity.parallel >= 0 or entity.budget >= 0 or entity.soft >= 0:
                found.append(entity)
    deployment = deployment if deployment is not None else ctx.deployment
    params = _field(deployment, "litellm_params")
    rpm = _limit(_field(deployment, "rpm") if _field(deployment, "rpm") is not None else _field(params, "rpm"))
    tpm = _limit(_field(deployment, "tpm") if _field(deployment, "tpm") is not None else _field(params, "tpm"))
    deployment_id = ctx.deployment_id or _field(deployment, "id") or ""
    if deployment_id and (rpm >= 0 or tpm >= 0):
        found.append(Entity(kind="deployment", pk=deployment_id, label=f"deployment '{deployment_id}'",
                            rpm=rpm, tpm=tpm))
    return found


async def _group(ctx: RequestContext) -> tuple[Any, ...]:
    """The deployments the router may pick for this request (admission runs before routing)."""
    if ctx.deployment is not None:
        return (ctx.deployment,)
    try:
        return tuple((ctx.registry or await registry.get()).group(ctx.model))
    except Exception:  # noqa: BLE001 - no registry (tests, commands): price by the model name
        return ()


def _dearest(ctx: RequestContext, group: tuple[Any, ...]) -> Price:
    """The price to reserve at: the dearest deployment the router might choose."""
    if not group:
        return prices.price_for(model=ctx.model, deployment=None)
    candidates = [prices.price_for(model=ctx.model, deployment=d) for d in group]
    return max(candidates, key=lambda p: (p.output_cost_per_token, p.input_cost_per_token))


@dataclass(slots=True)
class Reservation:
    """What admit took, so settle can give back exactly that."""

    mode: str                          # "redis" | "local" | "none"
    entities: list[Entity]
    price: Price
    reserve: int = 0                   # estimated cost reserved on each budgeted entity, 1e-8 USD
    bucket: int = 0                    # Redis reservation bucket (minute)
    local_reserved: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- errors

def money(amount: Decimal) -> str:
    """$10.02, or more decimals when cents would hide the amount ($0.00042)."""
    text = f"{amount:.8f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def _rate_headers(limit_requests: int, remaining_requests: int, remaining_tokens: int,
                  limit_tokens: int = -1) -> dict[str, str]:
    headers = {}
    if limit_requests >= 0:
        headers["x-ratelimit-limit-requests"] = str(limit_requests)
        headers["x-ratelimit-remaining-requests"] = str(max(0, remaining_requests))
    if limit_tokens >= 0:
        headers["x-ratelimit-limit-tokens"] = str(limit_tokens)
    if remaining_tokens >= 0:
        headers["x-ratelimit-remaining-tokens"] = str(max(0, remaining_tokens))
    return headers


def _refusal(kind: str, entity: Entity, limit: int, retry_after: int, remaining_tokens: int = -1) -> LlmurError:
    retry_after = max(1, int(retry_after))
    if kind == "rpm":
        what = f"rate limit exceeded: {limit} requests per minute (rpm_limit)"
        headers = _rate_headers(limit, 0, remaining_tokens)
    elif kind == "tpm":
        what = f"token rate limit exceeded: {limit} tokens per minute (tpm_limit)"
        headers = _rate_headers(-1, 0, 0, limit)
        if entity.rpm >= 0:
            headers["x-ratelimit-limit-requests"] = str(entity.rpm)
    else:
        what = f"parallel request limit reached: {limit} at a time (max_parallel_requests)"
        headers = {}
    headers["Retry-After"] = str(retry_after)
    error = LlmurError(429, "rate_limit_error", f"{entity.label} {what}. Retry after {retry_after} s.",
                       code="429", headers=headers)
    error.entity = entity
    return error


def _budget_refusal(entity: Entity, spend: Decimal, reserved: Decimal = Decimal(0)) -> LlmurError:
    in_flight = f" (+ {money(reserved)} reserved by requests in flight)" if reserved > 0 else ""
    # LiteLLM's clients look for its phrase "Budget has been exceeded!"; llmur's detail follows it.
    error = LlmurError(429, "budget_exceeded",
                       f"Budget has been exceeded! {entity.label} budget exceeded: spend {money(spend)}{in_flight} "
                       f"of max_budget "
                       f"{money(entity.max_budget or Decimal(0))}", code="429")
    error.entity = entity
    return error


_names: dict[tuple[str, Any], tuple[float, str]] = {}
NAME_TTL_SECONDS = 300.0


async def _named(error: LlmurError) -> LlmurError:
    """Put the entity's name in a refusal ("team 'research'", not "team 7") when the principal lacked it.

    Only refusals pay for this, and names are cached, so a client hammering a spent budget costs
    one query per entity every few minutes.
    """
    entity: Entity | None = error.entity
    if entity is None or entity.kind not in ("user", "project", "team", "organization") or \
            entity.label != f"{entity.kind} {entity.pk}":
        return error
    cached = _names.get((entity.kind, entity.pk))
    if cached is None or time.monotonic() - cached[0] > NAME_TTL_SECONDS:
        from billing.selectors import entity_name_get

        try:
            name = await _single_flight(("name", entity.ref), lambda: db_call(
                entity_name_get, kind=entity.kind, pk=entity.pk))
        except Exception:  # noqa: BLE001 - the id will do
            return error
        cached = _names[(entity.kind, entity.pk)] = (time.monotonic(), name)
    if cached[1]:
        error.message = error.message.replace(entity.label, f"{entity.kind} '{cached[1]}'", 1)
        error.args = (error.message,)
    return error


def _unavailable() -> LlmurError:
    return LlmurError(503, "service_unavailable",
                      "Rate limits and budgets cannot be checked: the cache (Redis) is unreachable and "
                      "cache_failure_policy is fail_closed. Retry shortly.", code="503",
                      headers={"Retry-After": "1"})


def _soft_warnings(ctx: RequestContext, entities: list[Entity], spends: list[int | None]) -> None:
    warnings = []
    for entity, spend in zip(entities, spends):
        if entity.soft >= 0 and spend is not None and spend >= entity.soft:
            warnings.append(f"{entity.label} soft_budget {money(entity.soft_budget or Decimal(0))} reached: "
                            f"spend {money(from_units(spend))}")
    if warnings:
        ctx.response_headers["x-llmur-budget-warning"] = "; ".join(warnings)
        _log_soft_budget(warnings)


_soft_logged: dict[str, float] = {}


def _log_soft_budget(warnings: list[str]) -> None:
    now = time.monotonic()
    for warning in warnings:
        if now - _soft_logged.get(warning.split(" soft_budget")[0], -1e9) > 60:
            _soft_logged[warning.split(" soft_budget")[0]] = now
            logger.warning("soft budget reached: %s", warning)


# --------------------------------------------------------------------------- Redis state

def _pack_evalsha(sha: str, args: list[Any]) -> bytes:
    """EVALSHA sha 0 *args in RESP, for the ints, strings and bytes the scripts take.

    redis-py's pack_command runs every argument through its generic Encoder; two calls per request
    made that a few per cent of a request's CPU.
    """
    parts = [b"*%d\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n$1\r\n0\r\n" % (len(args) + 3, len(sha), sha.encode())]
    for arg in args:
        if isinstance(arg, bytes):
            value = arg
        elif isinstance(arg, str):
            value = arg.encode()
        elif isinstance(arg, int):
            value = b"%d" % arg
        else:   # as redis-py would (a float by its repr)
            value = (repr(arg) if isinstance(arg, float) else str(arg)).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(value), value))
    return b"".join(parts)


class _ScriptConnections:
    """EVALSHA of the admit and settle scripts on connections of their own, without redis-py's command layer.

    Each request runs both scripts, and redis-py 8's generic path (Script.__call__, execute_command,
    its retry wrapper, argument filtering, the blocking pool's condition and observability hooks)
    cost more CPU than the scripts themselves. Here a call is: take an idle connection, send the
    packed command, read the reply, give the connection back. As with the shared pool, a burst
    queues for one of MAX_CONNECTIONS connections (up to WAIT_SECONDS) instead of opening hundreds.
    A connection that failed or was cancelled mid-reply is disconnected by redis-py and reconnects
    on its next use; a connection found dead on reuse is retried once on a fresh one.
    """

    MAX_CONNECTIONS = 64
    WAIT_SECONDS = 30.0

    def __init__(self, client: Any) -> None:
        pool = client.connection_pool
        self.client = client
        self.new = lambda: pool.connection_class(**pool.connection_kwargs)
        self.idle: list[Any] = []
        self.total = 0
        self.waiters: deque[asyncio.Future] = deque()

    async def _take(self) -> Any:
        if self.idle:
            return self.idle.pop()
        if self.total < self.MAX_CONNECTIONS:
            self.total += 1
            return self.new()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            async with asyncio.timeout(self.WAIT_SECONDS):
                return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give(waiter.result())   # handed over just as this wait ended: pass it on
            else:
                waiter.cancel()
            raise

    def _give(self, conn: Any) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self.idle.append(conn)

    async def evalsha(self, sha: str, script: str, args: list[Any]) -> Any:
        import redis

        conn = await self._take()
        try:
            for attempt in (1, 2, 3):
                reused = conn.is_connected
                try:
                    await conn.send_packed_command(_pack_evalsha(sha, args), check_health=False)
                    return await conn.read_response()
                except redis.exceptions.NoScriptError:
                    # Redis restarted or SCRIPT FLUSH: load it once, then run it.
                    await conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", script), check_health=False)
                    await conn.read_response()
                except (redis.ConnectionError, OSError):
                    await conn.disconnect(nowait=True)
                    if not reused or attempt == 3:
                        raise
            raise redis.ConnectionError("EVALSHA was not answered")
        finally:
            self._give(conn)

    async def evalsha_many(self, sha: str, script: str, batch: list[list[Any]]) -> list[Any]:
        """EVALSHA once per args in batch, pipelined on one connection; each reply or its ResponseError."""
        import redis

        conn = await self._take()
        try:
            for attempt in (1, 2, 3):
                reused, answered = conn.is_connected, False
                try:
                    results = await self._pipelined(conn, sha, batch)
                    answered = True
                    missing = [i for i, result in enumerate(results) if isinstance(result, redis.exceptions.NoScriptError)]
                    if missing:
                        # Redis restarted or SCRIPT FLUSH: those were not run; load the script, run them.
                        await conn.send_packed_command(conn.pack_command("SCRIPT", "LOAD", script), check_health=False)
                        await conn.read_response()
                        for i, result in zip(missing, await self._pipelined(conn, sha, [batch[i] for i in missing])):
                            results[i] = result
                    return results
                except (redis.ConnectionError, OSError):
                    await conn.disconnect(nowait=True)
                    # Only a dead connection found on reuse, before any reply, is worth a second try.
                    if not reused or answered or attempt == 3:
                        raise
            raise redis.ConnectionError("EVALSHA was not answered")
        finally:
            self._give(conn)

    @staticmethod
    async def _pipelined(conn: Any, sha: str, batch: list[list[Any]]) -> list[Any]:
        import redis

        await conn.send_packed_command(b"".join(_pack_evalsha(sha, args) for args in batch), check_health=False)
        results: list[Any] = []
        for _ in batch:
            try:
                results.append(await conn.read_response())
            except redis.ResponseError as exc:
                results.append(exc)
        return results

    async def aclose(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            try:
                await conn.disconnect(nowait=True)
            except Exception:  # noqa: BLE001 - closing at shutdown
                pass


_PLAIN_POOLS = ("ConnectionPool", "BlockingConnectionPool")


class _RedisState:
    """The scripts, and whether Redis is currently being bypassed (a simple circuit breaker)."""

    def __init__(self) -> None:
        self.scripts: dict[int, tuple[Any, Any]] = {}
        self.connections: _ScriptConnections | None = None
        self.degraded_since: float | None = None
        self.retry_at = 0.0
        self.dirty: set[tuple[str, Any]] = set()   # budget counters this process spent around
        self.recovering: asyncio.Task | None = None

    def script(self, name: str):
        client = async_redis()
        pair = self.scripts.get(id(client))
        if pair is None:
            pair = (client.register_script((LUA_DIR / "admit.lua").read_text()),
                    client.register_script((LUA_DIR / "settle.lua").read_text()))
            self.scripts = {id(client): pair}
        return pair[0] if name == "admit" else pair[1]

    async def run(self, name: str, args: list[Any]) -> Any:
        """One EVALSHA of the admit or settle script, on the script connections of the running loop."""
        script = self.script(name)
        client = async_redis()
        if type(client.connection_pool).__name__ not in _PLAIN_POOLS:
            # Sentinel: redis-py's path finds the master and retries through a failover.
            return await script(keys=[], args=args)
        return await self.connections_for(client).evalsha(script.sha, script.script, args)

    def connections_for(self, client: Any) -> _ScriptConnections:
        connections = self.connections
        if connections is None or connections.client is not client:
            # A new loop or client (tests, reloads): the old loop's connections are unusable.
            connections = self.connections = _ScriptConnections(client)
        return connections

    def usable(self) -> bool:
        return self.degraded_since is None or time.monotonic() >= self.retry_at

    def failed(self, step: str, exc: BaseException) -> None:
        if self.degraded_since is None:
            self.degraded_since = time.time()
            policy = settings.LLMUR.config.cache_failure_policy
            logger.warning("redis unreachable (%s during %s): %s", exc.__class__.__name__, step,
                           "limits per process, spend events to the database" if policy == "fail_open"
                           else "refusing requests (fail_closed)")
        self.retry_at = time.monotonic() + REDIS_RETRY_SECONDS
        if DEGRADED_EVENTS is not None:
            DEGRADED_EVENTS.labels(step=step).inc()

    def succeeded(self) -> None:
        if self.degraded_since is not None:
            self.degraded_since = None
            logger.warning("redis reachable again: limits and spend back on Redis")
            if self.recovering is None or self.recovering.done():
                self.recovering = asyncio.get_running_loop().create_task(self._recover())

    async def _recover(self) -> None:
        """Write what was recorded meanwhile, then drop the budget counters it went around."""
        try:
            await writer.flush()
            dirty, self.dirty = self.dirty, set()
            if dirty:
                await async_redis().delete(*(budget_key(kind, pk) for kind, pk in dirty))
            local.clear()
        except Exception as exc:  # noqa: BLE001 - next recovery tries again
            logger.warning("recovery after redis outage incomplete: %s", exc.__class__.__name__)


state = _RedisState()


class _Settlements:
    """The settle scripts of concurrent requests, sent together by one flusher task per event loop.

    A request queues its settlement synchronously and then waits for the batch it went out with,
    so its answer still leaves only once its spend is booked; a request cancelled while waiting
    (the client left) stops waiting, but its settlement is already queued and goes out exactly once
    with the batch (no task per request, as asyncio.shield needed). Under load, one write and one
    read carry many settlements. Should the batch fail, each settlement falls back as before
    (per-process counters, spend event to the batch writer).
    """

    def __init__(self) -> None:
        self.pending: list[tuple[list[Any], Any, asyncio.Future]] = []
        self.flusher: asyncio.Task | None = None

    def submit(self, args: list[Any], fallback) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.pending.append((args, fallback, future))
        flusher = self.flusher
        if flusher is None or flusher.done() or flusher.get_loop() is not loop:
            self.flusher = loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        import redis

        while self.pending:
            batch, self.pending = self.pending, []
            try:
                script = state.script("settle")
                connections = state.connections_for(async_redis())
                results = await connections.evalsha_many(script.sha, script.script, [args for args, _, _ in batch])
            except _redis_errors() as exc:
                for _args, fallback, future in batch:
                    fallback(exc)
                    if not future.done():
                        future.set_result(None)
                continue
            except BaseException as exc:
                for _args, _fallback, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                if not isinstance(exc, Exception):
                    raise
                continue
            state.succeeded()
            for (_args, _fallback, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, redis.ResponseError):
                    future.set_exception(result)
                else:
                    future.set_result(None)


settlements = _Settlements()


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.ConnectionError, redis.TimeoutError, OSError, asyncio.TimeoutError)


def _fail_open() -> bool:
    return settings.LLMUR.config.cache_failure_policy == "fail_open"


async def _pending_costs(kind: str, pk: Any) -> dict[str, Decimal]:
    """Costs of this entity's events still in the spend stream (settled, not yet in the database)."""
    client = async_redis()
    owner_field = {"key": "key_id", "user": "user_id", "project": "project_id", "team": "team_id",
                   "organization": "organization_id", "end_user": "end_user_id"}.get(kind)
    pending: dict[str, Decimal] = {}
    if owner_field is None:
        return pending
    start = "-"
    while True:
        entries = await client.xrange(STREAM, min=start, max="+", count=1000)
        for entry_id, fields in entries:
            try:
                event = orjson.loads(fields[b"e"])
            except (KeyError, ValueError):
                continue
            if str(event.get(owner_field)) == str(pk):
                pending[event["request_id"]] = Decimal(str(event.get("cost") or "0"))
        if len(entries) < 1000:
            return pending
        start = "(" + entries[-1][0].decode()


_in_flight: dict[Any, asyncio.Future] = {}


async def _single_flight(key: Any, factory):
    """Run factory() once for everyone awaiting the same key at the same time.

    A burst of requests that all find a counter missing (first use, after a reset) or all need
    the same name waits for one database query instead of sending one each.
    """
    running = _in_flight.get(key)
    if running is not None:
        return await asyncio.shield(running)
    future: asyncio.Future = asyncio.get_running_loop().create_future()
    _in_flight[key] = future
    try:
        result = await factory()
        future.set_result(result)
        return result
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()   # retrieved here, so a future nobody else awaited does not warn
        raise
    finally:
        _in_flight.pop(key, None)


async def _rebuild(entity: Entity) -> bool:
    """Recreate a missing budget counter from the database and the stream; False if impossible."""
    return await _single_flight(("rebuild", entity.ref), lambda: _rebuild_now(entity))


async def _rebuild_now(entity: Entity) -> bool:
    from billing.selectors import budget_snapshot

    try:
        pending = await _pending_costs(entity.kind, entity.pk)
        spend = await db_call(budget_snapshot, kind=entity.kind, pk=entity.pk, pending=pending)
    except _redis_errors():
        raise
    except Exception as exc:  # noqa: BLE001 - database down: known counters keep working
        logger.warning("cannot rebuild the budget counter of %s (database: %s: %s)", entity.label,
                       exc.__class__.__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
        return False
    await async_redis().hsetnx(budget_key(entity.kind, entity.pk), "s", to_units(spend))
    return True


async def _admit_redis(ctx: RequestContext, entities: list[Entity], reservation: Reservation) -> None:
    budgets = [entity.budget_arg for entity in entities]
    for _attempt in range(3):
        args: list[Any] = [KEY_PREFIX, ctx.request_id, reservation.reserve, INFLIGHT_TTL_MS, RESERVATION_BUCKETS,
                           len(entities)]
        for entity, budget in zip(entities, budgets):
            args += [entity.ref, entity.rpm, entity.tpm, entity.parallel, budget]
        reply = await state.run("admit", args)
        status = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if status == "ok":
            reservation.bucket = int(reply[1])
            ctx.response_headers.update(_rate_headers(int(reply[2]), int(reply[3]), int(reply[5]), int(reply[4])))
            n = len(entities)
            spends = [int(value) if value not in (b"", "", None) else None for value in reply[6:6 + n]]
            reserved = [int(value) for value in reply[6 + n:6 + 2 * n]]
            _soft_warnings(ctx, entities, spends)
            for entity, spend, held in zip(entities, spends, reserved):
                if spend is not None:
                    if entity.kind == "key":
                        ctx.metadata["key_spend"] = from_units(spend)   # LiteLLM's x-litellm-key-spend
                    # Should Redis fail, this process takes over from here: settled spend plus
                    # what was in flight (those requests settle into the database, not here).
                    local.known_spend[entity.ref] = spend + held + reservation.reserve
            return
        if status == "load":
            for index in reply[1:]:
                entity = entities[int(index) - 1]
                if not await _rebuild(entity):
                    if not _fail_open():
                        raise _unavailable()
                    budgets[int(index) - 1] = -1   # admit on the other checks this once
            continue
        entity = entities[int(reply[1]) - 1]
        if status == "budget":
            raise _budget_refusal(entity, from_units(int(reply[2])), from_units(int(reply[3])))
        raise _refusal(status, entity, int(reply[2]), int(reply[3]), int(reply[4]))
    raise LlmurError(503, "service_unavailable", "Budget counters are being rebuilt; retry shortly.", code="503",
                     headers={"Retry-After": "1"})


# --------------------------------------------------------------------------- per-process fallback

class LocalLimits:
    """Per-process counters for embedded mode and for Redis outages (limits divided by workers)."""

    def __init__(self) -> None:
        self.clear()
        self.known_spend: dict[str, int] = {}    # last spend + reservations seen in Redis, per entity ref

    def clear(self) -> None:
        self.requests: dict[str, deque[float]] = defaultdict(deque)
        self.tokens: dict[str, tuple[int, int]] = {}          # ref → (minute, tokens)
        self.inflight: dict[str, set[str]] = defaultdict(set)
        self.base: dict[str, int] = {}                        # spend when this process took over
        self.added: dict[str, int] = defaultdict(int)         # settled here since then
        self.reserved: dict[str, int] = defaultdict(int)

    def forget_budget(self, ref: str) -> None:
        self.base.pop(ref, None)
        self.added.pop(ref, None)
        self.known_spend.pop(ref, None)

    def admit(self, ctx: RequestContext, entities: list[Entity], reservation: Reservation, share: int) -> None:
        now = time.monotonic()
        minute = int(time.time() // 60)
        headers = (-1, -1, -1, -1)
        for entity in entities:
            ref = entity.ref
            if entity.rpm >= 0:
                limit = max(1, entity.rpm // share)
                log = self.requests[ref]
                while log and log[0] <= now - 60:
                    log.popleft()
                if len(log) >= limit:
                    raise _refusal("rpm", entity, limit, int(60 - (now - log[0])) + 1)
                headers = (limit, limit - len(log) - 1, headers[2], headers[3])
            if entity.tpm >= 0:
                limit = max(1, entity.tpm // share)
                used_minute, used = self.tokens.get(ref, (minute, 0))
                used = used if used_minute == minute else 0
                if used >= limit:
                    raise _refusal("tpm", entity, limit, 60 - int(time.time()) % 60)
                headers = (headers[0], headers[1], limit, limit - used)
            if entity.parallel >= 0 and len(self.inflight[ref]) >= max(1, entity.parallel // share):
                raise _refusal("parallel", entity, max(1, entity.parallel // share), 1)
            if entity.budget >= 0:
                base = self.base[ref]
                # This process may spend its share of what was left when it took over.
                allowance = (entity.budget - base) // share
                if self.added[ref] + self.reserved[ref] >= allowance:
                    raise _budget_refusal(entity, from_units(base + self.added[ref]), from_units(self.reserved[ref]))
        spends = []
        for entity in entities:
            ref = entity.ref
            if entity.rpm >= 0:
                self.requests[ref].append(now)
            if entity.parallel >= 0:
                self.inflight[ref].add(ctx.request_id)
            if entity.budget >= 0:
                self.reserved[ref] += reservation.reserve
                reservation.local_reserved.append(ref)
            spends.append(self.base[ref] + self.added[ref] if entity.soft >= 0 and ref in self.base else None)
        ctx.response_headers.update(_rate_headers(headers[0], headers[1], headers[3], headers[2]))
        _soft_warnings(ctx, entities, spends)

    def settle(self, ctx: RequestContext, reservation: Reservation, cost_units: int) -> None:
        minute = int(time.time() // 60)
        for entity in reservation.entities:
            ref = entity.ref
            self.inflight.get(ref, set()).discard(ctx.request_id)
            if ref in reservation.local_reserved:
                self.reserved[ref] = max(0, self.reserved[ref] - reservation.reserve)
            if entity.tracked and ref in self.base:
                self.added[ref] += cost_units
            if entity.tpm >= 0:
                used_minute, used = self.tokens.get(ref, (minute, 0))
                self.tokens[ref] = (minute, (used if used_minute == minute else 0) + ctx.usage.total_tokens)


local = LocalLimits()


async def _load_local_bases(entities: list[Entity], *, from_redis_snapshot: bool) -> None:
    """Give every budgeted entity a starting spend: the last seen in Redis, else the database."""
    from billing.selectors import entity_spend_get

    for entity in entities:
        if not entity.tracked or entity.ref in local.base:
            continue
        if from_redis_snapshot and entity.ref in local.known_spend:
            local.base[entity.ref] = local.known_spend[entity.ref]
            continue
        if entity.kind == "deployment":
            continue
        if not redis_configured():
            await writer.flush()   # embedded: what this process settled must be in the database first
        try:
            spend = await _single_flight(("spend", entity.ref), lambda: db_call(
                entity_spend_get, kind=entity.kind, pk=entity.pk))
        except Exception as exc:  # noqa: BLE001 - no Redis and no database: admit, and say so
            logger.warning("spend of %s unknown (database: %s); admitting without its budget",
                           entity.label, exc.__class__.__name__)
            continue
        local.base[entity.ref] = to_units(spend)


def _share() -> int:
    return max(1, int(settings.LLMUR.config.workers)) if redis_configured() else 1


# --------------------------------------------------------------------------- the contract

async def admit(ctx: RequestContext) -> None:
    """Refuse (LlmurError 429/503) or reserve; see the module docstring."""
    try:
        await _admit(ctx)
    except LlmurError as error:
        raise await _named(error) from None


async def _admit(ctx: RequestContext) -> None:
    await prices.ensure_loaded()
    group = await _group(ctx)
    # Per-deployment rpm/tpm are checked here when the deployment is known: the model group has
    # one deployment (or the caller chose it). Across several, picking one under its limits is
    # the router's part.
    entities = _entities(ctx, group[0] if len(group) == 1 else None)
    price = _dearest(ctx, group)
    reservation = Reservation(mode="none", entities=entities, price=price)
    if any(entity.budget >= 0 for entity in entities):
        body_bytes = ctx.body_bytes or len(orjson.dumps(ctx.body))
        reservation.reserve = estimate_cost_units(price, body=ctx.body, body_bytes=body_bytes,
                                                  deployment=group[0] if len(group) == 1 else None)
    if entities:
        if redis_configured() and state.usable():
            try:
                await _admit_redis(ctx, entities, reservation)
                reservation.mode = "redis"
                state.succeeded()
                ctx.reservation = reservation
                return
            except _redis_errors() as exc:
                state.failed("admit", exc)
        if redis_configured() and not _fail_open():
            raise _unavailable()
        # Entities without a starting spend (unknown budget) are admitted on their other limits.
        await _load_local_bases(entities, from_redis_snapshot=redis_configured())
        checked = [e if e.budget < 0 or e.ref in local.base else _without_budget(e) for e in entities]
        local.admit(ctx, checked, reservation, _share())
        reservation.entities = checked
        reservation.mode = "local"
    ctx.reservation = reservation


def _without_budget(entity: Entity) -> Entity:
    return Entity(kind=entity.kind, pk=entity.pk, label=entity.label, rpm=entity.rpm, tpm=entity.tpm,
                  parallel=entity.parallel)


def _complete_usage(ctx: RequestContext) -> None:
    """Count tokens the upstream did not report (a stream without usage, a client that left)."""
    usage = ctx.usage
    text = ctx.completion_text
    if not (ctx.usage_estimated or (usage.total_tokens == 0 and isinstance(text, str) and text)):
        return
    if usage.prompt_tokens == 0:
        usage.prompt_tokens = tokens.count_prompt(ctx.body)
    if isinstance(text, str) and text:
        # The text the client received, tokenized, replaces the pipeline's chunk count.
        usage.completion_tokens = tokens.count_text(text)
    ctx.usage_estimated = True


async def settle(ctx: RequestContext) -> None:
    """Release what admit took, book the real cost and tokens, record the spend event."""
    reservation: Reservation | None = ctx.reservation
    if reservation is None:
        # Not admitted through admit() (which loads prices): nothing was reserved to give back.
        await prices.ensure_loaded()
        reservation = Reservation(mode="none", entities=_entities(ctx),
                                  price=prices.price_for(model=ctx.model, deployment=ctx.deployment))
    _complete_usage(ctx)
    # The real price is the deployment's that answered (admission reserved at the dearest).
    price = prices.price_for(model=ctx.model, deployment=ctx.deployment) if ctx.deployment else reservation.price
    ctx.cost = cost_of(price, prompt_tokens=ctx.usage.prompt_tokens, completion_tokens=ctx.usage.completion_tokens)
    cost_units = to_units(ctx.cost)
    event = event_from_context(ctx, cost=ctx.cost)
    if reservation.mode == "local":
        local.settle(ctx, reservation, cost_units)
    if redis_configured() and state.usable():
        # A reservation taken locally was never made in Redis: only the event goes there.
        entities = reservation.entities if reservation.mode == "redis" else []
        args: list[Any] = [KEY_PREFIX, ctx.request_id, reservation.bucket,
                           reservation.reserve if reservation.mode == "redis" else 0, cost_units,
                           ctx.usage.total_tokens, STREAM, orjson.dumps(event), len(entities)]
        for entity in entities:
            args += [entity.ref, entity.flags]
        if type(async_redis().connection_pool).__name__ in _PLAIN_POOLS:
            def fallback(exc: BaseException) -> None:
                state.failed("settle", exc)
                _settle_without_redis(reservation, event)

            # Queued now, before any await: a cancelled wait still settles, once (see _Settlements).
            await settlements.submit(args, fallback)
            return
        # Sentinel: redis-py's own path, in a task of its own that a cancelled request cannot interrupt.
        await asyncio.shield(_settle_through_redis_py(args, reservation, event))
        return
    _settle_without_redis(reservation, event)


async def _settle_through_redis_py(args: list[Any], reservation: Reservation, event: dict[str, Any]) -> None:
    try:
        await state.run("settle", args)
        state.succeeded()
    except _redis_errors() as exc:
        state.failed("settle", exc)
        _settle_without_redis(reservation, event)


def _settle_without_redis(reservation: Reservation, event: dict[str, Any]) -> None:
    if redis_configured():
        # The counters this cost should have reached in Redis are rebuilt once Redis is back.
        for entity in reservation.entities:
            if entity.tracked and entity.kind != "deployment":
                state.dirty.add((entity.kind, entity.pk))
    writer.add(event)


# --------------------------------------------------------------------------- process lifetime

@on_startup
async def _start() -> None:
    if redis_configured():
        try:
            client = async_redis()
            state.script("admit")
            await client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP, or Redis not up yet (degraded mode)
            if "BUSYGROUP" not in str(exc):
                logger.warning("spend stream not prepared at start: %s", exc.__class__.__name__)


@on_shutdown
async def _stop() -> None:
    connections, state.connections = state.connections, None
    if connections is not None:
        await connections.aclose()
    await close_async()


@readiness_check("limits")
def _readiness() -> tuple[bool, str]:
    if not redis_configured():
        return True, "per-process (embedded)"
    if state.degraded_since is not None:
        since = time.strftime("%H:%M:%S", time.gmtime(state.degraded_since))
        policy = settings.LLMUR.config.cache_failure_policy
        return True, f"degraded since {since} UTC: redis unreachable ({policy})"
    return True, "redis"


# A budget the embedded upkeep reset is rebuilt from the database on its next use.
budget_reset_listeners.append(lambda kind, pk: local.forget_budget(entity_ref(kind, pk)))
