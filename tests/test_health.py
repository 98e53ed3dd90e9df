"""/health/liveliness and /health/readiness, with the cache failure policy of DESIGN.md."""
from __future__ import annotations

import pytest
from django.test import override_settings

from llmur.config import load_config
from llmur.core import health
from llmur.core.db import ConnectionWatch
from tests.conftest import free_port


@pytest.fixture
def closed_redis(tmp_path):
    """Settings whose cache is a Redis on a port where nothing listens."""
    url = f"redis://127.0.0.1:{free_port()}/4"

    def settings_for(policy: str) -> override_settings:
        loaded = load_config(None, env={"LLMUR_VAR_DIR": str(tmp_path), "REDIS_URL": url,
                                        "DATABASE_URL": "sqlite:///:memory:"})
        loaded.config = loaded.config.model_copy(update={"cache_failure_policy": policy})
        caches = {"default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": url,
                              "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1}}}
        return override_settings(LLMUR=loaded, CACHES=caches)
    return settings_for


def test_liveliness_answers_while_up(client, monkeypatch):
    # Liveness fails once the process's leak watch has seen a connection held for 300 s. The test
    # process is no gateway worker: pytest-django keeps its own connection checked out across tests,
    # and a loaded run spends more than 300 s in tests that never touch it. A watch of this test's
    # own asks what a worker that just started answers.
    monkeypatch.setattr(health, "watch", ConnectionWatch())
    response = client.get("/health/liveliness")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


@pytest.mark.django_db
def test_readiness_healthy_when_database_and_cache_answer(client):
    response = client.get("/health/readiness")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and body["database"] == "connected" and body["down"] == []


@pytest.mark.django_db
def test_readiness_fail_closed_cache_down_is_503_naming_the_cache(client, closed_redis):
    with closed_redis("fail_closed"):
        response = client.get("/health/readiness")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["down"] == ["cache"]
    assert body["cache"].startswith("unreachable") and body["database"] == "connected"


@pytest.mark.django_db
def test_readiness_fail_open_cache_down_is_200_degraded(client, closed_redis):
    with closed_redis("fail_open"):
        response = client.get("/health/readiness")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["down"] == ["cache"]
