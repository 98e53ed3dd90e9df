"""Helpers for driving gateway.admission directly with RequestContext objects on real Redis and the test database."""
from __future__ import annotations

import subprocess
import uuid
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from tests.conftest import free_port


def run(coro_factory):
    """Run an async callable on a fresh loop in a worker thread whose sync_to_async calls come back
    to this thread (so they see the test's transaction), closing Redis clients at the end."""
    from billing.connections import close_async

    async def wrapper():
        try:
            return await coro_factory()
        finally:
            await close_async()

    return async_to_sync(wrapper)()


def entity_limits(kind: str, obj: Any, name: str = ""):
    from gateway.context import EntityLimits

    return EntityLimits(kind=kind, id=obj.pk, max_budget=obj.max_budget, soft_budget=obj.soft_budget,
                        budget_duration=obj.budget_duration, rpm_limit=obj.rpm_limit, tpm_limit=obj.tpm_limit,
                        max_parallel_requests=obj.max_parallel_requests, name=name)


def principal_for(key, team=None):
    from gateway.context import Principal

    limits = [entity_limits("key", key, key.key_alias)]
    if team is not None:
        limits.append(entity_limits("team", team, team.name))
    return Principal(is_master=False, key_id=key.pk, key_hash=key.key_hash, display=key.display,
                     alias=key.key_alias, team_id=team.pk if team else None, limits=tuple(limits))


DEPLOYMENT = {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {}}


def make_ctx(principal, *, model: str = "gpt-4o", max_tokens: int = 20, stream: bool = False,
             deployment: dict | None = None, content: str = "hello there"):
    from gateway.context import RequestContext

    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    deployment = deployment or DEPLOYMENT
    return RequestContext(request_id=uuid.uuid4().hex, call_type="chat", model=model, body=body, stream=stream,
                          principal=principal, deployment=deployment, deployment_id="dep-1",
                          provider="openai")


@pytest.fixture(autouse=True)
def fresh_limits_state(monkeypatch):
    """Per-process state of gateway.admission starts empty in every test."""
    from billing.pricing import prices
    from billing.writer import writer
    from gateway.admission import breaker, local, scripts

    monkeypatch.setattr(breaker, "state", breaker.RedisBreaker())
    monkeypatch.setattr(scripts, "runner", scripts.ScriptRunner())
    monkeypatch.setattr(local, "counters", local.LocalLimits())
    prices._prices = None
    prices._first_load = None
    writer._buffer.clear()
    writer._task = None
    yield
    writer._buffer.clear()
    writer._task = None
    prices._prices = None
    prices._first_load = None


@pytest.fixture
def embedded(monkeypatch, settings):
    """Embedded mode: no Redis configured (cache engine local)."""
    from llmur.config import ResolvedCache

    monkeypatch.setattr(settings.LLMUR, "cache", ResolvedCache(engine="local"))


class OwnRedis:
    """A redis-server owned by one test (never the shared one), which it may stop and start."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path
        self.process: subprocess.Popen | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                import time
                time.sleep(0.02)
        raise RuntimeError("test redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def own_redis(tmp_path, monkeypatch, settings):
    """Point llmur at a test-owned redis-server for the duration of the test."""
    from llmur.config import ResolvedCache
    from llmur.core import redis as redis_registry

    server = OwnRedis(tmp_path)
    server.start()
    monkeypatch.setattr(settings.LLMUR, "cache", ResolvedCache(engine="redis", url=server.url))
    redis_registry.forget()
    yield server
    server.stop()
    redis_registry.forget()


@pytest.fixture
def redis_mode(redis_client, monkeypatch, settings):
    """Redis mode on the test Redis database (REDIS_URL), emptied first."""
    from llmur.core import redis as redis_registry

    assert settings.LLMUR.cache.engine == "redis"
    redis_registry.forget()
    yield redis_client
    redis_registry.forget()


def usd(value: str) -> Decimal:
    return Decimal(value)
