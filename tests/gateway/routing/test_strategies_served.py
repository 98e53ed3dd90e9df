"""The routing strategies other than simple-shuffle (least-busy, latency-based, usage-based), and the
embedded mode without Redis, each through a real llmur server and the fake provider.

test_gateway_routing.py has simple-shuffle's failures, cooldowns, fallbacks and the response cache;
each test here starts servers of its own.
"""
from __future__ import annotations

import http.client
import json
import select
import time
import uuid
from collections import Counter

import pytest

from gateway.routing.redis_state import COUNTERS_REFRESH_S, IN_FLIGHT
from tests.conftest import start_gateway, wait_until
from tests.gateway.routing.conftest import Client, by_model, deployment

pytestmark = pytest.mark.serial


class HeldRequest:
    """A chat request sent on a connection of its own and left unread until close() hangs up."""

    def __init__(self, url: str, key: str, model: str):
        host, port = url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port))
        self.connection.request("POST", "/v1/chat/completions", json.dumps({
            "model": model, "messages": [{"role": "user", "content": f"hold {uuid.uuid4().hex}"}]}),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})

    def answered(self) -> bool:
        return bool(select.select([self.connection.sock], [], [], 0)[0])

    def close(self) -> None:
        self.connection.close()                   # the server cancels a request whose client hung up


def test_least_busy_avoids_a_deployment_held_busy(django_db_setup, fake_provider, redis_url):
    import redis

    # Names of this run only: the fake provider's counts and Redis's in-flight counts outlive a test.
    run = uuid.uuid4().hex[:8]
    slow, fast, hang = f"lb-slow-{run}", f"lb-fast-{run}", f"lb-{run}-hang"
    server = start_gateway({
        "model_list": [deployment(slow, hang, fake_provider, "busy"), deployment(fast, fast, fake_provider, "busy")],
        "router_settings": {"routing_strategy": "least-busy", "num_retries": 0},
    }, workers=2)
    gateway = Client(server)
    shared = redis.Redis.from_url(redis_url)

    def in_flight() -> dict[str, int]:
        return {name: int(n or 0) for name, n in zip((slow, fast), shared.hmget(IN_FLIGHT, slow, fast))}

    held: list[HeldRequest] = []
    try:
        # Ties are broken at random: send requests one at a time until one sits on the deployment
        # that never answers (the others are answered by the fast one).
        while not by_model(fake_provider)[hang]:
            assert len(held) < 60, "least-busy never picked the slow deployment on a tie"
            held.append(HeldRequest(gateway.url, gateway.master_key, "busy"))
            wait_until(lambda: held[-1].answered() or by_model(fake_provider)[hang],
                       what="the request to be answered or to reach the hanging deployment")
        picks: Counter = Counter()
        for _ in range(20):
            # Both workers see the slow deployment busy and the fast one idle: the shared counters
            # say so, and every worker's view of them is re-read after at most COUNTERS_REFRESH_S.
            wait_until(lambda: in_flight() == {slow: 1, fast: 0}, what="the shared in-flight counts")
            time.sleep(COUNTERS_REFRESH_S * 1.5)
            picks[gateway.chat("busy").deployment] += 1
        assert picks == {fast: 20}
        assert by_model(fake_provider)[hang] == 1
    finally:
        for request in held:
            request.close()
        shared.close()
        server.stop()


def test_latency_based_prefers_the_faster_deployment(start_router_gateway, fake_provider):
    gateway = start_router_gateway({
        "model_list": [deployment("lat-slow", "mock-slow-600", fake_provider, "latency"),
                       deployment("lat-fast", "lat-fast", fake_provider, "latency")],
        "router_settings": {"routing_strategy": "latency-based-routing", "num_retries": 0},
    })
    warmup = Counter(gateway.chat("latency").deployment for _ in range(4))
    assert warmup["lat-slow"] >= 1                 # an unmeasured deployment is tried first
    picks = Counter(gateway.chat("latency").deployment for _ in range(20))
    assert picks == {"lat-fast": 20}


def test_usage_based_respects_rpm_headroom(start_router_gateway, fake_provider):
    gateway = start_router_gateway({
        "model_list": [deployment("ub-small", "ub-small", fake_provider, "usage", rpm=2),
                       deployment("ub-big", "ub-big", fake_provider, "usage", rpm=1000)],
        "router_settings": {"routing_strategy": "usage-based-routing", "num_retries": 0},
    })
    # rpm counts per minute: a burst that crosses into the next minute may use ub-small's 2 again there.
    first_minute = int(time.time() // 60)
    picks = Counter(gateway.chat("usage").deployment for _ in range(30))
    minutes = int(time.time() // 60) - first_minute + 1
    assert picks["ub-small"] <= 2 * minutes
    assert picks["ub-big"] == 30 - picks["ub-small"]


# --------------------------------------------------------------------------- embedded mode

def test_embedded_mode_routes_cools_down_and_caches_in_process(django_db_setup, fake_provider):
    from tests.conftest import start_gateway
    from tests.gateway.routing.conftest import Client

    server = start_gateway({
        "model_list": [deployment("emb-bad", "mock-500", fake_provider, "embedded"),
                       deployment("emb-good", "emb-good", fake_provider, "embedded")],
        "router_settings": {"num_retries": 1, "allowed_fails": 0, "cooldown_time": 60},
        "litellm_settings": {"cache": True, "cache_params": {"type": "local"}},
    }, env={"REDIS_URL": ""})
    try:
        gateway = Client(server)
        before = by_model(fake_provider)["mock-500"]
        answers = [gateway.chat("embedded") for _ in range(20)]
        assert {(a.status, a.deployment) for a in answers} == {(200, "emb-good")}
        assert by_model(fake_provider)["mock-500"] - before <= 1      # allowed_fails=0: out after one failure
        first = gateway.chat("embedded", "same question")
        again = gateway.chat("embedded", "same question")
        assert first.headers.get("x-llmur-cache-hit") is None
        assert again.headers["x-llmur-cache-hit"] == "true"
    finally:
        server.stop()
    assert "cache:    local memory" in server.output()            # no Redis: state lived in the process
