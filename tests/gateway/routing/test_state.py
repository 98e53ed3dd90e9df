"""Routing state: cooldowns and counters shared through real Redis, and the in-process variant."""
from __future__ import annotations

import asyncio
import time

import pytest

from gateway.routing import counters as routing_counters
from gateway.routing import local_state as routing_local
from gateway.routing import redis_state as routing_redis
from gateway.routing.local_state import LocalState
from gateway.routing.redis_state import RedisState


@pytest.fixture(params=["local", "redis"])
def make_state(request):
    """A factory of states; the Redis ones share one (flushed) database, like two workers."""
    if request.param == "local":
        shared = LocalState()
        return lambda: shared
    request.getfixturevalue("redis_client")
    url = request.getfixturevalue("redis_url")
    return lambda: RedisState(url)


def run(coro):
    return asyncio.run(coro)


class Clock:
    """The routing state's clock, driven by the test: cooldown ends and usage minutes depend on
    nothing but advance()."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0 + 5                 # five seconds into a minute
        self.mono = 1_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(routing_local, "time", clock)
    monkeypatch.setattr(routing_redis, "time", clock)
    return clock


async def written(state) -> None:
    """Writes are fire-and-forget by design: wait until this state's flusher has sent what it queued
    (a condition, not a sleep a loaded machine outlasts). The in-process state writes at once."""
    flusher = getattr(getattr(state, "_writes", None), "task", None)
    if flusher is not None and not flusher.done():
        await flusher


def test_deployment_cooled_down_after_allowed_fails_is_passed(make_state):
    async def scenario():
        state = make_state()
        results = [await state.failed("dep-a", allowed_fails=2, cooldown_time=30) for _ in range(3)]
        cooled, _ = await state.read(["dep-a", "dep-b"], None)
        await state.close()
        return results, cooled

    results, cooled = run(scenario())
    assert results == [False, False, True]
    assert cooled == frozenset({"dep-a"})


def test_cooldown_is_seen_by_another_worker_and_ends_after_cooldown_time(redis_url, redis_client, clock):
    async def scenario():
        worker_1, worker_2 = RedisState(redis_url), RedisState(redis_url)
        await worker_2.read(["dep-a"], None)          # worker 2 caches "nothing cooled"
        assert await worker_1.failed("dep-a", allowed_fails=0, cooldown_time=0.6)
        clock.advance(routing_redis.COOLDOWN_REFRESH_S)   # worker 2's cached view is now due for a re-read
        during, _ = await worker_2.read(["dep-a"], None)
        clock.advance(0.6 - routing_redis.COOLDOWN_REFRESH_S)  # cooldown_time has passed
        after, _ = await worker_2.read(["dep-a"], None)
        remaining = await worker_1.cooldowns()
        await worker_1.close()
        await worker_2.close()
        return during, after, remaining

    during, after, remaining = run(scenario())
    assert during == frozenset({"dep-a"})
    assert after == frozenset()
    assert remaining == {}


def test_failures_spread_over_workers_add_up(redis_url, redis_client):
    async def scenario():
        workers = [RedisState(redis_url) for _ in range(3)]
        outcomes = [await w.failed("dep-a", allowed_fails=2, cooldown_time=30) for w in workers]
        for w in workers:
            await w.close()
        return outcomes

    assert run(scenario()) == [False, False, True]
    assert redis_client.zscore(routing_redis.COOLDOWNS, "dep-a") > time.time() + 25


def test_in_flight_counts_are_shared_and_released(make_state):
    async def scenario():
        state = make_state()
        for _ in range(3):
            state.started("dep-a", "in_flight")
        state.started("dep-b", "in_flight")
        await written(state)
        _, busy = await make_state().read(["dep-a", "dep-b", "dep-c"], "in_flight")
        state.finished("dep-a", "in_flight")
        await written(state)
        _, later = await make_state().read(["dep-a"], "in_flight")
        await state.close()
        return busy.in_flight, later.in_flight

    busy, later = run(scenario())
    assert busy == {"dep-a": 3, "dep-b": 1, "dep-c": 0}
    assert later == {"dep-a": 2}


def test_usage_counts_requests_and_tokens_this_minute(make_state, clock):
    async def scenario():
        state = make_state()
        state.started("dep-a", "usage")
        state.started("dep-a", "usage")
        state.finished("dep-a", "usage", tokens=120)
        await written(state)
        _, usage = await make_state().read(["dep-a", "dep-b"], "usage")
        clock.advance(60)                             # the next minute starts from nothing
        _, next_minute = await make_state().read(["dep-a", "dep-b"], "usage")
        await state.close()
        return usage, next_minute

    usage, next_minute = run(scenario())
    assert usage.rpm == {"dep-a": 2, "dep-b": 0}
    assert usage.tpm == {"dep-a": 120, "dep-b": 0}
    assert next_minute.rpm == {"dep-a": 0, "dep-b": 0}


def test_latency_keeps_a_bounded_number_of_recent_samples(make_state):
    async def scenario():
        state = make_state()
        for value in range(1, routing_counters.LATENCY_SAMPLES + 3):
            state.finished("dep-a", "latency", latency=value / 100)
        state.finished("dep-a", "latency", latency=0.5, ttft=0.05)
        await written(state)
        _, counters = await make_state().read(["dep-a", "dep-b"], "latency")
        await state.close()
        return counters

    counters = run(scenario())
    assert len(counters.latency["dep-a"]) == routing_counters.LATENCY_SAMPLES
    # Fire-and-forget writes may land in any order, so only membership is certain.
    sent = {v / 100 for v in range(1, routing_counters.LATENCY_SAMPLES + 3)} | {0.5}
    assert set(counters.latency["dep-a"]) <= sent
    assert counters.ttft == {"dep-a": [0.05]}
    assert "dep-b" not in counters.latency


def test_redis_down_routes_on_local_state():
    async def scenario():
        state = RedisState("redis://127.0.0.1:1/0")     # nothing listens on port 1
        cooled_first, _ = await state.read(["dep-a"], "in_flight")
        state.started("dep-a", "in_flight")
        outcome = await state.failed("dep-a", allowed_fails=0, cooldown_time=30)
        cooled, counters = await state.read(["dep-a"], "in_flight")
        await state.close()
        return cooled_first, outcome, cooled, counters

    cooled_first, outcome, cooled, counters = run(scenario())
    assert cooled_first == frozenset()
    assert outcome is True
    assert cooled == frozenset({"dep-a"})
    assert counters.in_flight == {"dep-a": 1}


def test_own_requests_count_at_once_and_other_workers_after_the_refresh(redis_url, redis_client, clock):
    async def scenario():
        mine, other = RedisState(redis_url), RedisState(redis_url)
        await mine.read(["dep-a"], "in_flight")            # a snapshot now cached in `mine`
        mine.started("dep-a", "in_flight")
        _, own = await mine.read(["dep-a"], "in_flight")
        other.started("dep-a", "in_flight")
        other.started("dep-a", "in_flight")
        await written(other)
        clock.advance(routing_redis.COUNTERS_REFRESH_S)  # mine's snapshot is now due for a re-read
        _, shared = await mine.read(["dep-a"], "in_flight")
        mine.finished("dep-a", "in_flight")
        _, after = await mine.read(["dep-a"], "in_flight")
        await mine.close()
        await other.close()
        return own.in_flight, shared.in_flight, after.in_flight

    own, shared, after = run(scenario())
    assert own == {"dep-a": 1}
    assert shared == {"dep-a": 3}
    assert after == {"dep-a": 2}


def test_writes_queued_on_a_finished_event_loop_still_reach_redis(redis_url, redis_client):
    """Django's test client runs each request on a fresh event loop; no write may be stranded."""
    state = RedisState(redis_url)

    async def first_loop():
        state.started("dep-a", "in_flight")       # the loop ends before its flusher has run

    async def second_loop():
        state.started("dep-a", "in_flight")
        # The flusher runs in the background: give it until both writes land (not a fixed sleep,
        # which a loaded machine outlasts), and fail below if they never do.
        for _ in range(200):
            if int(redis_client.hget(routing_redis.IN_FLIGHT, "dep-a") or 0) >= 2:
                break
            await asyncio.sleep(0.025)

    run(first_loop())
    run(second_loop())
    assert int(redis_client.hget(routing_redis.IN_FLIGHT, "dep-a")) == 2
    run(state.close())                            # gives the two slots back
    assert int(redis_client.hget(routing_redis.IN_FLIGHT, "dep-a")) == 0
