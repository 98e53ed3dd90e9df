"""The audit's connection-pool leak: every new budgeted key's first request kept a pooled connection.

Driven as the audit did: a real server with a small pool, hundreds of new keys with a budget, one
request each, with Redis up and then down (the fallback path loads spend from the database too).
Afterwards the pool must be back to idle, readiness healthy and the management API answering.
On the leaking code the pool ran dry after a handful of keys and everything after got 503.
"""
from __future__ import annotations

import json
import threading
import urllib.request
from decimal import Decimal

import pytest

from tests.conftest import chat_status, mock_model_list, start_gateway, wait_until
from tests.factories import make_key

pytestmark = pytest.mark.serial

POOL_SIZE = 4


def _get(url: str, key: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _one_request_each(url: str, keys: list[str], threads: int = 8) -> list[int]:
    statuses: list[int] = []
    pending = list(keys)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not pending:
                    return
                key = pending.pop()
            status = chat_status(url, key, "mock-gpt")
            with lock:
                statuses.append(status)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    return statuses


def test_hundreds_of_new_budgeted_keys_leave_the_pool_idle(own_redis, transactional_db, fake_provider, django_db_setup):
    from django.conf import settings

    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("the connection pool is PostgreSQL's (psycopg_pool)")
    with_redis = [make_key(key_alias=f"leak-a-{i}", max_budget=Decimal("5"))[0] for i in range(200)]
    without_redis = [make_key(key_alias=f"leak-b-{i}", max_budget=Decimal("5"))[0] for i in range(120)]
    server = start_gateway({"model_list": mock_model_list(fake_provider.url),
                            "database_configuration": {"min_connections": 1, "max_connections": POOL_SIZE,
                                                       "pool_timeout": 5}},
                           env={"REDIS_URL": own_redis.url})
    try:
        assert set(_one_request_each(server.url, with_redis)) == {200}
        own_redis.stop()   # fail_open: limits per process, budgets loaded from the database
        assert set(_one_request_each(server.url, without_redis)) == {200}
        status, ready = _get(f"{server.url}/health/readiness")
        assert ready["database"] == "connected" and ready["database_pool"]["max"] == POOL_SIZE, ready
        # No leak: every connection comes back. Not at one instant (the in-process spend writer books
        # on its own schedule and holds one while it does), but once that work is done.
        wait_until(lambda: _get(f"{server.url}/health/readiness")[1]["database_pool"]["in_use"] == 0,
                   what="the pool to have no connection in use")
        assert _get(f"{server.url}/health/liveliness") == (200, {"status": "alive"})
        status, info = _get(f"{server.url}/key/info?key={with_redis[0]}", server.master_key)
        assert status == 200, info
    finally:
        server.stop()
    assert "PoolTimeout" not in server.output()
