"""Routing through a real llmur server and the fake provider: the issue's "done when" list.

Each test uses model groups of its own, so a cooldown or a cached answer of one test cannot leak
into another on the module's shared servers.
"""
from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest

from gateway.routing.redis_state import COOLDOWN_REFRESH_S, COOLDOWNS, PREFIX
from tests.conftest import start_fake_provider, wait_until
from tests.factories import make_key
from tests.gateway.routing.conftest import by_model, deployment

pytestmark = pytest.mark.serial

COOLDOWN_S = 4


@pytest.fixture(scope="module")
def second_upstream():
    upstream = start_fake_provider()
    yield upstream
    upstream.process.terminate()
    upstream.process.wait(timeout=10)


@pytest.fixture(scope="module")
def shuffle_gateway(start_router_gateway, fake_provider, second_upstream):
    """Two workers, simple-shuffle, response cache on, fallbacks configured."""
    up, other = fake_provider, second_upstream
    return start_router_gateway({
        "model_list": [
            deployment("cd-bad", "mock-500", up, "cooldown"),
            deployment("cd-good", "cd-good", other, "cooldown"),
            deployment("w-heavy", "w-heavy", up, "weighted", weight=3),
            deployment("w-light", "w-light", up, "weighted", weight=1),
            deployment("fb-429", "mock-429", up, "flaky"),
            deployment("fb-500", "mock-500", other, "flaky"),
            deployment("fb-backup", "fb-backup", other, "backup"),
            deployment("cw-small", "mock-400", up, "small-context"),
            deployment("cw-large", "cw-large", up, "large-context"),
            deployment("cut", "mock-cut", up, "cut", weight=1),
            deployment("cut-spare", "cut-spare", other, "cut", weight=0),
            deployment("cache-1", "cache-1", up, "cached"),
            deployment("hl-ok", "hl-ok", up, "health-check"),
            deployment("hl-bad", "mock-500", up, "health-check"),
        ],
        "router_settings": {
            "routing_strategy": "simple-shuffle", "num_retries": 2, "allowed_fails": 1,
            "cooldown_time": COOLDOWN_S,
            "fallbacks": [{"flaky": ["backup"]}],
            "context_window_fallbacks": [{"small-context": ["large-context"]}],
        },
        "litellm_settings": {"cache": True, "cache_params": {"type": "redis", "ttl": 600, "namespace": "route-t"}},
    }, workers=2)


def stored_answers(redis_url: str) -> set[bytes]:
    """The response cache's entries in Redis (namespace route-t of the shuffle gateway)."""
    import redis

    with redis.Redis.from_url(redis_url) as client:
        return set(client.scan_iter("llmur:respcache:route-t:*"))


def wait_stored(redis_url: str, before: set[bytes]) -> None:
    """The answer is stored after the response is sent (not awaited by the request): wait for it."""
    wait_until(lambda: stored_answers(redis_url) - before, what="the answer to be stored in the response cache")


# --------------------------------------------------------------------------- failures and cooldowns

def cooldown_left(redis_client, deployment_id: str) -> float:
    """Seconds of cooldown the shared set gives the deployment (0 when it is not cooling down)."""
    until = redis_client.zscore(COOLDOWNS, deployment_id)
    return max(0.0, until - time.time()) if until else 0.0


def wait_cooldown_over(redis_client, deployment_id: str) -> None:
    wait_until(lambda: cooldown_left(redis_client, deployment_id) == 0, what=f"the cooldown of {deployment_id} to end")
    time.sleep(COOLDOWN_REFRESH_S * 1.5)   # every worker's cached view of the cooldown set is re-read by now


def test_failing_deployment_is_routed_around_and_cooled_down_on_both_workers(shuffle_gateway, fake_provider,
                                                                              second_upstream, redis_url):
    import redis

    shared = redis.Redis.from_url(redis_url)
    before_bad, before_good = by_model(fake_provider)["mock-500"], by_model(second_upstream)["cd-good"]
    answers = [shuffle_gateway.chat("cooldown") for _ in range(100)]
    assert [a.status for a in answers] == [200] * 100
    assert {a.deployment for a in answers} == {"cd-good"}
    assert by_model(second_upstream)["cd-good"] - before_good == 100
    assert by_model(fake_provider)["mock-500"] - before_bad >= 2   # allowed_fails=1: cooled at the 2nd failure

    # A fresh cooldown: once the first one is over, the second failure cools cd-bad again, for cooldown_time.
    wait_cooldown_over(shared, "cd-bad")
    # A worker whose cached view of the cooldown set was still stale may have sent cd-bad one more
    # request after it was cooled; that failure counts in the window and would make the next single
    # failure cool it. Start this phase from an empty failure count.
    shared.delete(f"{PREFIX}fails:cd-bad")
    failures, started = by_model(fake_provider)["mock-500"], time.time()
    for _ in range(50):
        if (shared.zscore(COOLDOWNS, "cd-bad") or 0) > started:
            break
        assert shuffle_gateway.chat("cooldown").status == 200
    until = shared.zscore(COOLDOWNS, "cd-bad")
    assert until and started + COOLDOWN_S <= until <= time.time() + COOLDOWN_S
    assert by_model(fake_provider)["mock-500"] - failures == 2

    # From here the test drives the cooldown's clock through the shared set: held in force for as
    # long as the checks take (however slow the machine), then ended.
    shared.zadd(COOLDOWNS, {"cd-bad": time.time() + 600})
    time.sleep(COOLDOWN_REFRESH_S * 1.5)   # every worker's cached view of the cooldown set is re-read by now
    during = by_model(fake_provider)["mock-500"]
    assert all(shuffle_gateway.chat("cooldown").status == 200 for _ in range(30))
    assert by_model(fake_provider)["mock-500"] == during          # both workers kept away from it

    # Once its cooldown ends it gets traffic again (and fails, and is retried elsewhere).
    shared.zadd(COOLDOWNS, {"cd-bad": time.time() + 0.5})
    wait_cooldown_over(shared, "cd-bad")
    assert all(shuffle_gateway.chat("cooldown").status == 200 for _ in range(20))
    assert by_model(fake_provider)["mock-500"] > during
    shared.close()


# --------------------------------------------------------------------------- fallbacks

def test_fallbacks_when_every_deployment_returns_429_or_5xx(shuffle_gateway, fake_provider, second_upstream):
    before = by_model(fake_provider) + by_model(second_upstream)
    answer = shuffle_gateway.chat("flaky")
    after = by_model(fake_provider) + by_model(second_upstream)
    assert answer.status == 200
    assert answer.deployment == "fb-backup"
    assert answer.json()["choices"][0]["message"]["content"]
    assert after["mock-429"] - before["mock-429"] >= 1
    assert after["mock-500"] - before["mock-500"] >= 1
    assert after["fb-backup"] - before["fb-backup"] == 1


@pytest.mark.django_db(transaction=True)
def test_one_request_id_and_one_spend_row_across_retries_and_fallback(shuffle_gateway):
    from django.core.management import call_command

    from billing.models import SpendLog

    request_id = f"route-fallback-{uuid.uuid4().hex}"
    answer = shuffle_gateway.chat("flaky", headers={"x-request-id": request_id})
    assert answer.status == 200 and answer.headers["x-request-id"] == request_id
    deadline = time.monotonic() + 10
    while not SpendLog.objects.filter(client_request_id=request_id).exists() and time.monotonic() < deadline:
        call_command("process_spend")
        time.sleep(0.1)
    rows = list(SpendLog.objects.filter(client_request_id=request_id))
    assert [(row.deployment, row.http_status) for row in rows] == [("fb-backup", 200)]


def test_context_window_fallback_on_context_length_exceeded(shuffle_gateway, fake_provider):
    before = by_model(fake_provider)
    answer = shuffle_gateway.chat("small-context")
    assert answer.status == 200
    assert answer.deployment == "cw-large"
    after = by_model(fake_provider)
    assert after["mock-400"] - before["mock-400"] == 1     # a client error is not retried
    assert after["cw-large"] - before["cw-large"] == 1


def test_request_fallbacks_in_the_body(shuffle_gateway):
    answer = shuffle_gateway.chat("small-context", fallbacks=["backup"], context_window_fallbacks=["backup"])
    assert answer.status == 200
    assert answer.deployment == "fb-backup"


def test_without_a_fallback_the_upstream_error_is_returned(shuffle_gateway):
    answer = shuffle_gateway.chat("small-context", context_window_fallbacks=[])
    assert answer.status == 400
    assert answer.json()["error"]["code"] == "context_length_exceeded"


def test_malformed_fallbacks_field_is_a_400_naming_it(shuffle_gateway):
    answer = shuffle_gateway.chat("flaky", fallbacks="backup")
    assert answer.status == 400
    assert answer.json()["error"]["param"] == "fallbacks"


# --------------------------------------------------------------------------- streams

def test_stream_cut_after_first_chunk_is_not_retried(shuffle_gateway, fake_provider, second_upstream):
    before_cut, before_spare = by_model(fake_provider)["mock-cut"], by_model(second_upstream)["cut-spare"]
    answer = shuffle_gateway.chat("cut", stream=True)
    assert answer.status == 200
    text = answer.body.decode()
    assert text.startswith("data: ")
    assert '"error"' in text                                   # the client is told the stream broke
    assert answer.deployment == "cut"
    assert by_model(fake_provider)["mock-cut"] - before_cut == 1
    assert by_model(second_upstream)["cut-spare"] == before_spare


# --------------------------------------------------------------------------- simple-shuffle weights

def test_simple_shuffle_honours_weights(shuffle_gateway):
    picks = Counter(shuffle_gateway.chat("weighted").deployment for _ in range(400))
    # weight 3 : 1 → 75 %; 400 draws have a standard deviation of 2.2 %, the bounds are > 4 of them.
    assert set(picks) == {"w-heavy", "w-light"}
    assert 0.65 <= picks["w-heavy"] / 400 <= 0.85


# --------------------------------------------------------------------------- response cache

def test_identical_request_is_served_from_cache_and_no_cache_bypasses_it(shuffle_gateway, fake_provider, redis_url):
    prompt = f"cache me {uuid.uuid4().hex}"
    before = stored_answers(redis_url)
    first = shuffle_gateway.chat("cached", prompt, temperature=0)
    assert first.status == 200 and first.headers.get("x-llmur-cache-hit") is None
    wait_stored(redis_url, before)
    count = by_model(fake_provider)["cache-1"]
    second = shuffle_gateway.chat("cached", prompt, temperature=0)
    assert second.status == 200
    assert second.headers["x-llmur-cache-hit"] == "true"
    assert second.json() == first.json()
    assert by_model(fake_provider)["cache-1"] == count        # upstream not called

    bypass = shuffle_gateway.chat("cached", prompt, temperature=0, cache={"no-cache": True})
    assert bypass.status == 200 and bypass.headers.get("x-llmur-cache-hit") is None
    header = shuffle_gateway.chat("cached", prompt, temperature=0, headers={"Cache-Control": "no-cache"})
    assert header.headers.get("x-llmur-cache-hit") is None
    assert by_model(fake_provider)["cache-1"] == count + 2
    other = shuffle_gateway.chat("cached", prompt, temperature=1)
    assert other.headers.get("x-llmur-cache-hit") is None


@pytest.mark.django_db(transaction=True)
def test_cache_hit_is_marked_and_billed_zero_in_spendlog(shuffle_gateway, redis_url):
    from django.core.management import call_command

    from billing.models import SpendLog

    prompt = f"bill me {uuid.uuid4().hex}"
    miss_id, hit_id = f"route-miss-{uuid.uuid4().hex}", f"route-hit-{uuid.uuid4().hex}"
    before = stored_answers(redis_url)
    assert shuffle_gateway.chat("cached", prompt, headers={"x-request-id": miss_id}).status == 200
    wait_stored(redis_url, before)
    hit = shuffle_gateway.chat("cached", prompt, headers={"x-request-id": hit_id})
    assert hit.headers["x-llmur-cache-hit"] == "true"
    deadline = time.monotonic() + 10
    while (SpendLog.objects.filter(client_request_id__in=[miss_id, hit_id]).count() < 2
           and time.monotonic() < deadline):
        call_command("process_spend")
        time.sleep(0.1)
    miss_row = SpendLog.objects.get(client_request_id=miss_id)
    hit_row = SpendLog.objects.get(client_request_id=hit_id)
    assert (miss_row.cache_hit, hit_row.cache_hit) == (False, True)
    assert miss_row.deployment == "cache-1"
    assert hit_row.cost == 0


def test_cached_answer_never_crosses_a_keys_allow_list(shuffle_gateway, transactional_db, fake_provider, redis_url):
    may, may_not = make_key(allowed_models=["cached"]).plaintext, make_key(allowed_models=["weighted"]).plaintext
    prompt = f"private {uuid.uuid4().hex}"
    before = stored_answers(redis_url)
    assert shuffle_gateway.chat("cached", prompt, key=may).status == 200
    wait_stored(redis_url, before)
    count = by_model(fake_provider)["cache-1"]
    refused = shuffle_gateway.chat("cached", prompt, key=may_not)
    assert refused.status == 401
    assert refused.headers.get("x-llmur-cache-hit") is None
    assert "choices" not in refused.json()
    assert shuffle_gateway.chat("cached", prompt, key=may).headers["x-llmur-cache-hit"] == "true"
    assert by_model(fake_provider)["cache-1"] == count


def test_fallback_the_key_may_not_use_is_skipped(shuffle_gateway, transactional_db, second_upstream):
    key = make_key(allowed_models=["flaky"]).plaintext
    before = by_model(second_upstream)["fb-backup"]
    answer = shuffle_gateway.chat("flaky", key=key)
    assert answer.status in (429, 502)
    assert answer.deployment in ("fb-429", "fb-500")
    assert by_model(second_upstream)["fb-backup"] == before


# --------------------------------------------------------------------------- /health

def test_health_lists_healthy_and_unhealthy_deployments_for_master_key_only(shuffle_gateway, transactional_db):
    answer = shuffle_gateway.request("GET", "/health?model=health-check")
    assert answer.status == 200
    body = answer.json()
    assert [e["id"] for e in body["healthy_endpoints"]] == ["hl-ok"]
    assert [e["id"] for e in body["unhealthy_endpoints"]] == ["hl-bad"]
    assert body["healthy_count"] == 1 and body["unhealthy_count"] == 1
    assert "sk-upstream-test" not in answer.body.decode()
    assert shuffle_gateway.request("GET", "/health", key="sk-not-a-key").status == 401
    assert shuffle_gateway.request("GET", "/health", key=make_key().plaintext).status == 403
    assert shuffle_gateway.request("GET", "/health?model=nope").status == 404


def test_health_reports_a_cooling_deployment_without_calling_it(shuffle_gateway, fake_provider, redis_url):
    import redis

    shared = redis.Redis.from_url(redis_url)
    for _ in range(50):                                          # cool "cd-bad" down (allowed_fails=1)
        if cooldown_left(shared, "cd-bad") > 1:
            break
        shuffle_gateway.chat("cooldown")
    shared.close()
    before = by_model(fake_provider)["mock-500"]
    body = shuffle_gateway.request("GET", "/health?model=cooldown").json()
    unhealthy = {e["id"]: e for e in body["unhealthy_endpoints"]}
    assert "cooling down" in unhealthy["cd-bad"]["error"]
    assert by_model(fake_provider)["mock-500"] == before
