"""Audit finding 16.13: a Redis that keeps nothing on disk loses the queued spend events on a crash.

At start llmur reads Redis's persistence settings; without AOF or RDB it logs a warning and says so
in /health/readiness (without taking the pod out of rotation). A Redis that refuses CONFIG is fine.
"""
from __future__ import annotations

import json
import urllib.request

import pytest

from tests.conftest import start_gateway
from tests.hardening.conftest import OwnRedis

pytestmark = pytest.mark.django_db(transaction=True)


def _readiness(server) -> dict:
    with urllib.request.urlopen(f"{server.url}/health/readiness", timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.fixture
def redis_with(tmp_path):
    started: list[OwnRedis] = []

    def start(*args: str) -> OwnRedis:
        server = OwnRedis(tmp_path, *args)
        server.start()
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway_on():
    started = []

    def start(redis: OwnRedis):
        server = start_gateway({}, env={"REDIS_URL": redis.url})
        started.append(server)
        return server
    yield start
    for server in started:
        server.stop()


def test_a_redis_without_aof_or_rdb_is_a_warning_and_a_readiness_detail(django_db_setup, redis_with, gateway_on):
    server = gateway_on(redis_with("--save", "", "--appendonly", "no"))
    body = _readiness(server)
    assert body["status"] == "healthy"
    assert body["redis_persistence"].startswith("none: neither AOF (appendonly) nor RDB snapshots (save) are on")
    assert "redis_persistence" not in body["down"]
    assert "keeps nothing on disk (appendonly no" in server.output()


def test_a_redis_with_aof_is_reported_as_such_without_a_warning(django_db_setup, redis_with, gateway_on):
    server = gateway_on(redis_with("--save", "", "--appendonly", "yes"))
    assert _readiness(server)["redis_persistence"] == "aof"
    assert "keeps nothing on disk" not in server.output()


def test_a_redis_with_rdb_snapshots_only_is_named(django_db_setup, redis_with, gateway_on):
    server = gateway_on(redis_with("--save", "60 1", "--appendonly", "no"))
    assert _readiness(server)["redis_persistence"].startswith("rdb snapshots only (save 60 1)")


def test_a_redis_refusing_config_is_tolerated(django_db_setup, redis_with, gateway_on):
    server = gateway_on(redis_with("--save", "", "--appendonly", "no", "--rename-command", "CONFIG", ""))
    body = _readiness(server)
    assert body["status"] == "healthy" and body["redis_persistence"] == "unknown (CONFIG GET refused)"
    assert "keeps nothing on disk" not in server.output()
