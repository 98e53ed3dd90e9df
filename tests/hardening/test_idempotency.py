"""Idempotency-Key on completion requests, through a real server (Redis-backed, and embedded)."""
from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

from tests.conftest import mock_model_list, start_gateway
from tests.factories import make_key
from tests.gateway.helpers import bearer, post

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hi"}]


def _config(upstream_url: str) -> dict:
    models = mock_model_list(upstream_url)
    models.append({"model_name": "slow", "litellm_params": {"model": "openai/mock-slow-1500",
                                                            "api_base": f"{upstream_url}/v1"}})
    return {"model_list": models, "router_settings": {"num_retries": 0}}


@pytest.fixture(scope="module", params=["redis", "embedded"])
def server(request, django_db_setup, fake_provider):
    if request.param == "redis":
        url = os.environ.get("REDIS_URL")
        if not url:
            pytest.skip("needs REDIS_URL")
        import redis

        redis.Redis.from_url(url).flushdb()
        gateway = start_gateway(_config(fake_provider.url))
    else:
        gateway = start_gateway(_config(fake_provider.url), env={"REDIS_URL": ""})
    gateway.mode = request.param
    yield gateway
    gateway.stop()


def _spend_rows(server, key_id: int) -> int:
    """SpendLog rows of a key once every spend event has been written."""
    from billing.models import SpendLog

    if server.mode == "redis":
        import redis

        from billing.queue import drain

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        drain(client=client, max_seconds=30)
        client.close()
        return SpendLog.objects.filter(key_id=key_id).count()
    # Embedded: the in-process batch writer flushes within its interval.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not SpendLog.objects.filter(key_id=key_id).exists():
        time.sleep(0.1)
    time.sleep(1.0)   # several flush intervals (0.25 s): a second (wrong) row would have landed by now
    return SpendLog.objects.filter(key_id=key_id).count()


def test_a_repeated_request_is_replayed_without_a_second_call_or_charge(server, fake_provider):
    key, row = make_key(key_alias="idem")
    token = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    body = {"model": "mock-gpt", "messages": HELLO, "max_tokens": 3}
    fake_provider.reset()
    status, headers, first = post(server.url, "/v1/chat/completions", body, {**bearer(key), **token})
    assert status == 200 and "idempotent-replayed" not in headers
    for _ in range(2):
        status, again_headers, again = post(server.url, "/v1/chat/completions", body, {**bearer(key), **token})
        assert status == 200 and again == first
        assert again_headers["idempotent-replayed"] == "true"
        assert again_headers["x-request-id"] == headers["x-request-id"]
    assert fake_provider.stats()["requests"] == 1
    # The same token on another key is another request: keys never see each other's answers.
    other, _ = make_key(key_alias="idem-other")
    status, other_headers, _ = post(server.url, "/v1/chat/completions", body, {**bearer(other), **token})
    assert status == 200 and "idempotent-replayed" not in other_headers
    assert fake_provider.stats()["requests"] == 2
    assert _spend_rows(server, row.pk) == 1


def test_the_same_key_with_another_body_is_400(server):
    key, _ = make_key(key_alias="idem-body")
    token = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    assert post(server.url, "/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1},
                {**bearer(key), **token})[0] == 200
    status, headers, body = post(server.url, "/v1/chat/completions",
                           {"model": "mock-gpt", "messages": [{"role": "user", "content": "other"}], "max_tokens": 1},
                           {**bearer(key), **token})
    assert status == 400, body
    assert body["error"]["param"] == "Idempotency-Key" and "different request body" in body["error"]["message"]


def test_a_concurrent_duplicate_is_409_and_only_one_reaches_upstream(server, fake_provider):
    key, _ = make_key(key_alias="idem-race")
    token = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    body = {"model": "slow", "messages": HELLO, "max_tokens": 1}
    fake_provider.reset()
    results = []
    first = threading.Thread(target=lambda: results.append(post(server.url, "/v1/chat/completions", body,
                                                                {**bearer(key), **token})))
    first.start()
    deadline = time.monotonic() + 10
    while fake_provider.stats()["requests"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    status, _, answer = post(server.url, "/v1/chat/completions", body, {**bearer(key), **token})
    first.join(timeout=30)
    assert status == 409 and answer["error"]["param"] == "Idempotency-Key", answer
    assert "still in progress" in answer["error"]["message"]
    assert results and results[0][0] == 200
    # Once finished, the answer is replayed.
    status, headers, replayed = post(server.url, "/v1/chat/completions", body, {**bearer(key), **token})
    assert status == 200 and headers["idempotent-replayed"] == "true" and replayed == results[0][2]
    assert fake_provider.stats()["requests"] == 1


def test_an_error_is_not_stored_so_the_client_may_retry(server, fake_provider):
    key, _ = make_key(key_alias="idem-error")
    token = {"Idempotency-Key": f"err-{uuid.uuid4()}"}
    body = {"model": "mock-500", "messages": HELLO, "max_tokens": 1}
    fake_provider.reset()
    for _ in range(2):
        status, headers, _ = post(server.url, "/v1/chat/completions", body, {**bearer(key), **token})
        assert status == 502 and "idempotent-replayed" not in headers
    assert fake_provider.stats()["requests"] == 2


def test_a_malformed_idempotency_key_is_400(server):
    key, _ = make_key(key_alias="idem-bad")
    status, _, body = post(server.url, "/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO},
                           {**bearer(key), "Idempotency-Key": "x" * 300})
    assert status == 400 and body["error"]["param"] == "Idempotency-Key"
