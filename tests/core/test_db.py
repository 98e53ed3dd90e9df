"""db_call gives connections back; the watchdog tells a leak from an outage, with time driven by the test."""
from __future__ import annotations

import asyncio
import threading

import pytest
from django.conf import settings
from django.db import connections
from django.db.backends.signals import connection_created

from llmur.core.db import ConnectionWatch, db_call

pytestmark = pytest.mark.django_db(transaction=True)


def _count_users() -> int:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.count()


def _in_a_task_of_its_own(coroutine_function) -> None:
    """Run in a new thread's event loop: a task context of its own, as a request's task has."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coroutine_function())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    if failures:
        raise failures[0]


@pytest.fixture
def pool():
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"] or not connections["default"].pool:
        pytest.skip("the connection pool is PostgreSQL's (psycopg_pool)")
    yield connections["default"].pool
    # A test that leaked on purpose leaves the pool short of a connection: start the next test on a new one.
    for wrapper in _kept:
        wrapper.inc_thread_sharing()   # its thread is gone; closing it from here is safe
        wrapper.close()
    _kept.clear()
    connections["default"].close()
    connections["default"].close_pool()


def _in_use(pool) -> int:
    stats = pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


def test_db_call_gives_the_connection_back(pool):
    before = _in_use(pool)

    async def many_tasks() -> None:
        await asyncio.gather(*(db_call(_count_users) for _ in range(20)))

    _in_a_task_of_its_own(many_tasks)
    assert _in_use(pool) == before


def test_db_call_gives_the_connection_back_when_the_function_raises(pool):
    before = _in_use(pool)

    def failing() -> None:
        _count_users()
        raise ValueError("boom")

    async def call() -> None:
        with pytest.raises(ValueError):
            await db_call(failing)

    _in_a_task_of_its_own(call)
    assert _in_use(pool) == before


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def watch():
    clock = Clock()
    answers = {"value": True}
    watch = ConnectionWatch(leak_after_s=300, clock=clock, database_answers=lambda: answers["value"])
    # The test's own connection was checked out before this watch listened: give it back first, as a
    # server's watch listens before its first connection.
    connections["default"].close()
    connection_created.connect(watch.connected)
    watch.clock_, watch.answers_ = clock, answers
    yield watch
    connection_created.disconnect(watch.connected)


_kept: list = []


def _leak_one_connection() -> None:
    """A connection wrapper that checked a connection out in a task of its own and is never closed."""
    def leaky() -> None:
        wrapper = connections["default"]
        wrapper.ensure_connection()
        _kept.append(wrapper)   # kept alive, so the watch sees it holding its connection

    thread = threading.Thread(target=leaky)
    thread.start()
    thread.join(timeout=30)


def _orphan_one_connection(pool) -> None:
    """A checkout nobody holds any more: the pool still counts it (what a collected wrapper leaves)."""
    pool.getconn()


def test_a_leaked_connection_fails_liveness_only_after_the_bound(pool, watch):
    _leak_one_connection()
    assert watch.leaked() == 0
    watch.clock_.now += 299
    assert watch.leaked() == 0
    watch.clock_.now += 2
    assert watch.leaked() == 1


def test_a_checkout_nobody_holds_is_a_leak_after_the_bound(pool, watch):
    _orphan_one_connection(pool)
    assert watch.leaked() == 0   # first seen now
    watch.clock_.now += 301
    assert watch.leaked() == 1


def test_a_database_outage_is_not_a_leak(pool, watch):
    _leak_one_connection()
    assert watch.leaked() == 0
    watch.answers_["value"] = False
    watch.clock_.now += 1000
    assert watch.leaked() == 0
    watch.answers_["value"] = True
    assert watch.leaked() == 1


def test_connections_used_and_given_back_are_not_a_leak(pool, watch):
    async def used() -> None:
        await asyncio.gather(*(db_call(_count_users) for _ in range(5)))

    _in_a_task_of_its_own(used)
    watch.clock_.now += 10_000
    assert watch.leaked() == 0


def test_the_probe_reaches_the_real_database(pool):
    from llmur.core.db import _database_answers

    assert _database_answers() is True


def test_liveness_answers_503_naming_the_leak(pool, watch, client, monkeypatch):
    from llmur.core import health

    monkeypatch.setattr(health, "watch", watch)
    assert client.get("/health/liveliness").json() == {"status": "alive"}
    _leak_one_connection()
    assert client.get("/health/liveliness").status_code == 200   # seen once: the bound starts
    watch.clock_.now += 301
    response = client.get("/health/liveliness")
    assert response.status_code == 503
    assert "connection leak" in response.json()["reason"]
