"""Routing state every worker shares: cooldowns, in-flight counts, per-minute usage, latencies.

With Redis configured the state lives there, so all workers (and pods) route on the same numbers
and a cooled-down deployment is avoided everywhere; in embedded mode it lives in this process.

Cost on the hot path (DESIGN.md, "What the hot path can afford"):
  * reads are folded into at most one pipelined round trip per request, and usually none: the
    cooldown set is cached in-process for COOLDOWN_REFRESH_S and a group's counters for
    COUNTERS_REFRESH_S (corrected meanwhile by this process's own requests, which it knows exactly);
  * writes (in-flight, usage, latency) are queued and not awaited, so they never delay an answer;
    one flusher per process sends them in order, batched (or they ride along with the next read);
  * only failures run a script synchronously, because their outcome (cooled or not) steers the retry.

When Redis is unreachable routing keeps working (fail open): the last cooldown set seen stays in
force, failures are counted in-process, and strategies route without shared counters until Redis
answers again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.routing.counters import FAIL_WINDOW_S, LATENCY_SAMPLES, LATENCY_TTL_S, Counters, minute_of
from gateway.routing.local_state import LocalState
from llmur.core.breaker import CircuitBreaker
from llmur.core.flusher import WriteBehind
from llmur.core.redis import async_redis, close_async

logger = logging.getLogger("llmur.routing")

PREFIX = "llmur:route:"
COOLDOWNS = PREFIX + "cooldowns"            # sorted set: deployment id → cooldown end (epoch seconds)
IN_FLIGHT = PREFIX + "inflight"             # hash: deployment id → requests in flight
COOLDOWN_REFRESH_S = 0.2                    # how stale a worker's view of the cooldown set may be
COUNTERS_REFRESH_S = 0.1                    # how stale its view of other workers' counters may be
REFRESH_WAIT_S = 1.0                        # a refresh on its way longer than this (a loop that ended) is not waited for
REDIS_RETRY_S = 1.0                         # after a Redis error, do not try it again for this long


def _usage_key(minute: int) -> str:
    return f"{PREFIX}usage:{minute}"


@dataclass(slots=True)
class _Snapshot:
    """Shared counters of one group as read from Redis, and this process's own counts at that moment."""

    at: float          # monotonic time of the read
    minute: int
    counters: Counters
    own: dict


# Counts a failure within the window and, once allowed_fails is passed, puts the deployment in the
# cooldown set. One script, so two workers failing at once cannot both miss the threshold.
_FAIL_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4])) end
if n > tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


_NO_REFRESH = (float("-inf"), None)


class RedisState:
    """Routing state in Redis, shared by every worker; see the module docstring for its costs."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._client = None
        self._fail_script = None
        self._local = LocalState()
        self._cooled: dict[str, float] = {}        # last cooldown set read from Redis: id → end
        self._cooled_read_at = float("-inf")       # monotonic time of that read
        self._cooled_refreshing: tuple = _NO_REFRESH    # (start, token) while a read of the set is on its way
        self._snapshots_refreshing: dict[tuple, float] = {}  # group → start of its counters' read
        self._breaker = CircuitBreaker(REDIS_RETRY_S)
        self._writes: WriteBehind = WriteBehind(self._send)   # writes waiting for the flusher, in order
        self._held: dict[str, int] = defaultdict(int)  # in-flight this process added, released at shutdown
        self._closed = False
        self._snapshots: dict[tuple, _Snapshot] = {}
        self._own_minute = 0
        self._own_rpm: dict[str, int] = defaultdict(int)
        self._own_tpm: dict[str, int] = defaultdict(int)
        self._own_latency: dict[str, deque] = {}
        self._own_ttft: dict[str, deque] = {}
        self._expired_at: dict[str, float] = {}

    # ----------------------------------------------------------------- reads

    async def read(self, ids: Sequence[str], need: str | None) -> tuple[frozenset[str], Counters]:
        """Cooled-down ids and the strategy's counters, in at most one round trip.

        The shared numbers are re-read at most every COUNTERS_REFRESH_S per group; in between, the
        last snapshot is corrected by what this process itself did since (exact for its own
        requests, at most that stale for other workers'). Writes still queued go out first in the
        same pipeline, so the snapshot includes everything this process did before it.
        """
        now, mono = time.time(), time.monotonic()
        # One refresh at a time: while one is on its way, concurrent requests route on the last set
        # and snapshot (a few ms older) instead of each sending the same read.
        stale_cooled = (mono - self._cooled_read_at >= COOLDOWN_REFRESH_S
                        and (mono - self._cooled_refreshing[0] >= REFRESH_WAIT_S
                             or self._cooled_read_at == float("-inf")))
        key = (need, tuple(ids))
        snapshot = self._snapshots.get(key) if need is not None else None
        stale_snapshot = need is not None and (snapshot is None or snapshot.minute != minute_of(now) or (
            mono - snapshot.at >= COUNTERS_REFRESH_S
            and mono - self._snapshots_refreshing.get(key, float("-inf")) >= REFRESH_WAIT_S))
        if not stale_cooled and not stale_snapshot:
            return self._cooled_ids(now) | self._local.cooled_ids(now), self._estimate(snapshot, ids, need)
        client = self._redis()
        if client is None:
            cooled, counters = await self._local.read(ids, need)
            return cooled | self._cooled_ids(now), counters
        pipe = client.pipeline(transaction=False)
        queued = self._drain(pipe)
        if stale_cooled:
            pipe.zrangebyscore(COOLDOWNS, now, "+inf", withscores=True)
        if stale_snapshot:
            if need == "in_flight":
                pipe.hmget(IN_FLIGHT, list(ids))
            elif need == "usage":
                pipe.hmget(_usage_key(minute_of(now)), [f"{i}:r" for i in ids] + [f"{i}:t" for i in ids])
            elif need == "latency":
                for i in ids:
                    pipe.lrange(f"{PREFIX}lat:{i}", 0, -1)
                    pipe.lrange(f"{PREFIX}ttft:{i}", 0, -1)
        own = self._own_now(need) if stale_snapshot else None
        marker = (mono, object())
        if stale_cooled:
            self._cooled_refreshing = marker
        if stale_snapshot:
            self._snapshots_refreshing[key] = mono
        try:
            results = (await pipe.execute())[queued:]
        except Exception as exc:  # noqa: BLE001 - any Redis failure means "route without it for now"
            self._went_down(exc)
            cooled, counters = await self._local.read(ids, need)
            return cooled | self._cooled_ids(now), counters
        finally:
            if self._cooled_refreshing is marker:
                self._cooled_refreshing = _NO_REFRESH
            if stale_snapshot and self._snapshots_refreshing.get(key) == mono:
                del self._snapshots_refreshing[key]
        if stale_cooled:
            self._cooled = {member: score for member, score in results.pop(0)}
            self._cooled_read_at = time.monotonic()
        if stale_snapshot:
            snapshot = self._snapshots[key] = _Snapshot(mono, minute_of(now), self._parse(ids, need, results), own)
        return self._cooled_ids(now) | self._local.cooled_ids(now), self._estimate(snapshot, ids, need)

    @staticmethod
    def _parse(ids: Sequence[str], need: str | None, results: list) -> Counters:
        counters = Counters()
        if need == "in_flight":
            counters.in_flight = {i: int(v or 0) for i, v in zip(ids, results[0])}
        elif need == "usage":
            values = results[0]
            counters.rpm = {i: int(v or 0) for i, v in zip(ids, values[:len(ids)])}
            counters.tpm = {i: int(v or 0) for i, v in zip(ids, values[len(ids):])}
        elif need == "latency":
            for n, i in enumerate(ids):
                if results[2 * n]:
                    counters.latency[i] = [float(v) for v in results[2 * n]]
                if results[2 * n + 1]:
                    counters.ttft[i] = [float(v) for v in results[2 * n + 1]]
        return counters

    def _own_now(self, need: str | None) -> dict:
        """What this process has counted itself, to subtract later from a snapshot taken now."""
        if need == "in_flight":
            return dict(self._held)
        if need == "usage":
            self._roll_own(time.time())
            return {"r": dict(self._own_rpm), "t": dict(self._own_tpm)}
        return {}

    def _estimate(self, snapshot: _Snapshot | None, ids: Sequence[str], need: str | None) -> Counters:
        """The snapshot plus what this process did since it was read."""
        if snapshot is None or need is None:
            return Counters()
        base, own, counters = snapshot.counters, snapshot.own, Counters()
        if need == "in_flight":
            # Clamped: a count cannot really go below zero, whatever a crashed worker left behind.
            counters.in_flight = {i: max(0, base.in_flight.get(i, 0) + self._held.get(i, 0) - own.get(i, 0))
                                  for i in ids}
        elif need == "usage":
            self._roll_own(time.time())
            counters.rpm = {i: base.rpm.get(i, 0) + self._own_rpm.get(i, 0) - own["r"].get(i, 0) for i in ids}
            counters.tpm = {i: base.tpm.get(i, 0) + self._own_tpm.get(i, 0) - own["t"].get(i, 0) for i in ids}
        elif need == "latency":
            for name, store, samples in (("latency", base.latency, self._own_latency),
                                         ("ttft", base.ttft, self._own_ttft)):
                merged = {}
                for i in ids:
                    newer = [v for at, v in samples.get(i, ()) if at > snapshot.at]
                    values = (newer + store.get(i, []))[:LATENCY_SAMPLES]
                    if values:
                        merged[i] = values
                setattr(counters, name, merged)
        return counters

    async def cooldowns(self) -> dict[str, float]:
        """Deployment id → seconds of cooldown left, read fresh (for /health)."""
        now = time.time()
        local = await self._local.cooldowns()
        client = self._redis()
        if client is None:
            return local | {i: end - now for i, end in self._cooled.items() if end > now}
        try:
            rows = await client.zrangebyscore(COOLDOWNS, now, "+inf", withscores=True)
        except Exception as exc:  # noqa: BLE001
            self._went_down(exc)
            return local | {i: end - now for i, end in self._cooled.items() if end > now}
        return local | {member: score - now for member, score in rows}

    # ----------------------------------------------------------------- writes

    def started(self, deployment_id: str, need: str | None) -> None:
        if need == "in_flight":
            self._held[deployment_id] += 1
            self._fire(lambda p: self._expiring(p.hincrby(IN_FLIGHT, deployment_id, 1), IN_FLIGHT, 600),
                       lambda: self._local.started(deployment_id, need))
        elif need == "usage":
            now = time.time()
            self._roll_own(now)
            self._own_rpm[deployment_id] += 1
            key = _usage_key(minute_of(now))
            self._fire(lambda p: self._expiring(p.hincrby(key, f"{deployment_id}:r", 1), key, 120),
                       lambda: self._local.started(deployment_id, need))

    def finished(self, deployment_id: str, need: str | None, *, latency: float | None = None,
                 ttft: float | None = None, tokens: int = 0) -> None:
        if need == "in_flight":
            self._held[deployment_id] -= 1
            self._fire(lambda p: p.hincrby(IN_FLIGHT, deployment_id, -1),
                       lambda: self._local.finished(deployment_id, need))
        elif need == "usage" and tokens:
            now = time.time()
            self._roll_own(now)
            self._own_tpm[deployment_id] += tokens
            key = _usage_key(minute_of(now))
            self._fire(lambda p: self._expiring(p.hincrby(key, f"{deployment_id}:t", tokens), key, 120),
                       lambda: self._local.finished(deployment_id, need, tokens=tokens))
        elif need == "latency" and (latency is not None or ttft is not None):
            mono = time.monotonic()
            for store, value in ((self._own_latency, latency), (self._own_ttft, ttft)):
                if value is not None:
                    store.setdefault(deployment_id, deque(maxlen=LATENCY_SAMPLES)).appendleft((mono, value))

            def commands(p):
                for name, value in (("lat", latency), ("ttft", ttft)):
                    if value is not None:
                        key = f"{PREFIX}{name}:{deployment_id}"
                        p.lpush(key, f"{value:.6f}").ltrim(key, 0, LATENCY_SAMPLES - 1).expire(key, LATENCY_TTL_S)
            self._fire(commands, lambda: self._local.finished(deployment_id, need, latency=latency, ttft=ttft))

    async def failed(self, deployment_id: str, *, allowed_fails: int, cooldown_time: float) -> bool:
        """Count a failure on every worker's behalf; True when it put the deployment in cooldown."""
        client = self._redis()
        if client is None:
            return await self._local.failed(deployment_id, allowed_fails=allowed_fails, cooldown_time=cooldown_time)
        now = time.time()
        try:
            cooled = await self._fail_script(
                keys=[f"{PREFIX}fails:{deployment_id}", COOLDOWNS],
                args=[allowed_fails, cooldown_time, now, FAIL_WINDOW_S, deployment_id])
        except Exception as exc:  # noqa: BLE001
            self._went_down(exc)
            return await self._local.failed(deployment_id, allowed_fails=allowed_fails, cooldown_time=cooldown_time)
        if cooled:
            # This worker knows at once; the others see it at their next refresh of the set.
            self._cooled[deployment_id] = now + cooldown_time
        return bool(cooled)

    async def close(self) -> None:
        """Give back this process's in-flight counts and wait for writes still on their way."""
        flusher = self._writes.task
        if flusher is not None and not flusher.done() and flusher.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(flusher, return_exceptions=True)
        # From now on this process writes nothing more: requests still finishing after shutdown
        # began must not take their slot back a second time.
        self._closed = True
        client = self._client
        if client is None:
            return
        held = {i: n for i, n in self._held.items() if n > 0}
        try:
            if held:
                pipe = client.pipeline(transaction=False)
                for deployment_id, n in held.items():
                    pipe.hincrby(IN_FLIGHT, deployment_id, -n)
                await pipe.execute()
            await close_async("routing")
        except Exception:  # noqa: BLE001 - shutting down; nothing left to do about it
            pass
        self._client = None

    # ----------------------------------------------------------------- plumbing

    def _cooled_ids(self, now: float) -> frozenset[str]:
        return frozenset(i for i, end in self._cooled.items() if end > now)

    def _redis(self):
        """The client of the running event loop, or None while Redis is considered down."""
        if not self._breaker.usable():
            return None
        client = async_redis("routing", url=self._url)
        if client is not self._client:
            self._client = client
            self._fail_script = client.register_script(_FAIL_SCRIPT)
        return client

    def _went_down(self, exc: BaseException) -> None:
        if self._breaker.usable():
            logger.warning("routing: Redis unreachable (%s); routing on this worker's own state for now",
                           exc.__class__.__name__)
        self._breaker.failed()

    def _roll_own(self, now: float) -> None:
        minute = minute_of(now)
        if minute != self._own_minute:
            self._own_minute = minute
            self._own_rpm.clear()
            self._own_tpm.clear()

    def _expiring(self, pipe, key: str, ttl: int):
        """Refresh a key's TTL at most every quarter of it, not on every write."""
        mono = time.monotonic()
        if mono - self._expired_at.get(key, float("-inf")) >= ttl / 4:
            self._expired_at[key] = mono
            pipe.expire(key, ttl)
        return pipe

    def _drain(self, pipe) -> int:
        """Move queued writes into `pipe` (ahead of its reads); returns how many commands they added."""
        if not self._writes.pending:
            return 0
        before = len(pipe.command_stack)
        for build in self._writes.take():
            build(pipe)
        return len(pipe.command_stack) - before

    def _fire(self, build, fallback) -> None:
        """Queue a write without waiting for it; while Redis is down, update local state instead.

        One flusher per process sends the queued writes in order, batched into one pipeline on one
        connection: an in-flight slot's release can never overtake its taking, and a burst of
        requests costs one round trip, not one each.
        """
        if self._closed:
            return
        client = self._redis()
        if client is None:
            fallback()
            return
        self._writes.add(build)

    async def _send(self, ops: list) -> bool:
        """Send queued writes in one pipeline; False (stop flushing) when Redis failed."""
        pipe = async_redis("routing", url=self._url).pipeline(transaction=False)
        for build in ops:
            build(pipe)
        try:
            await pipe.execute()
        except asyncio.CancelledError:
            # Its event loop is ending (a test client's per-request loop): the next flush sends them.
            self._writes.requeue(ops)
            raise
        except Exception as exc:  # noqa: BLE001 - a lost counter update only skews routing a little
            self._went_down(exc)
            return False
        return True
