"""Budgets, rate limits and spend through the real server (llmur-proxy) on real Redis and PostgreSQL."""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import threading
from decimal import Decimal
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import start_gateway, wait_until
from tests.factories import make_key
from tests.gateway.admission.conftest import OwnRedis

pytestmark = [pytest.mark.serial, pytest.mark.django_db(transaction=True)]

IN_PRICE, OUT_PRICE = Decimal("0.000001"), Decimal("0.000002")


def priced_model_list(upstream_url: str) -> list[dict]:
    return [{"model_name": "priced", "litellm_params": {"model": "openai/mock-gpt", "api_base": f"{upstream_url}/v1"},
             "model_info": {"input_cost_per_token": str(IN_PRICE), "output_cost_per_token": str(OUT_PRICE)}},
            {"model_name": "mock-drip-50", "litellm_params": {"model": "openai/mock-drip-50",
                                                               "api_base": f"{upstream_url}/v1"}}]


def body_for(i: int, stream: bool) -> dict:
    body = {"model": "priced", "messages": [{"role": "user", "content": f"request {i:04d} " + "lorem " * 64}],
            "max_tokens": 16}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    return body


async def fire(url: str, key: str, bodies: list[dict]) -> list[tuple[int, dict, str]]:
    """Send every body at once; returns (status, headers, text) per request."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def one(body):
            async with session.post(f"{url}/v1/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as response:
                return response.status, {k.lower(): v for k, v in response.headers.items()}, await response.text()
        return await asyncio.gather(*(one(b) for b in bodies))


def drain_all(redis_url: str | None = None) -> None:
    import redis

    from billing.queue import drain

    client = redis.Redis.from_url(redis_url or os.environ["REDIS_URL"])
    try:
        drain(client=client, max_seconds=60)
    finally:
        client.close()


def test_200_concurrent_requests_on_a_budget_for_about_100(redis_client, fake_provider, django_db_setup):
    from billing.models import SpendLog
    from billing.pricing import Price, estimate_cost_units, from_units

    # One request: 99 prompt tokens (the mock counts 4 characters a token) + 16 completion tokens
    # = $0.000131, so the budget covers 100 requests.
    plaintext, key = make_key(key_alias="budget-200", max_budget=Decimal("0.0131"))
    server = start_gateway({"model_list": priced_model_list(fake_provider.url)})
    try:
        bodies = [body_for(i, stream=i % 2 == 0) for i in range(200)]
        results = asyncio.run(fire(server.url, plaintext, bodies))
    finally:
        server.stop()
    log = server.output()
    # This run is about Redis-backed budgets: no fallback to per-process limits, no skipped budget.
    assert "llmur.limits redis unreachable" not in log and "cannot rebuild" not in log, log[-2000:]
    drain_all()
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert all(status == 429 and json.loads(text)["error"]["type"] == "budget_exceeded" for status, _, text in refused)
    # All 200 arrive at once, so in-flight reservations (estimated at bytes / 3 prompt tokens,
    # above the real 4 characters a token) refuse some before the others settle: fewer than 100.
    assert refused and 50 <= len(ok) <= 101
    rows = SpendLog.objects.filter(key_id=key.pk)
    assert sorted(rows.values_list("request_id", flat=True)) == sorted(h["x-request-id"] for _, h, _ in ok)
    assert not rows.filter(request_id__in=[h.get("x-request-id") for _, h, _ in refused]).exists()
    # Costs are exactly tokens × prices, row by row and in total.
    total = Decimal(0)
    for row in rows:
        assert row.cost == row.prompt_tokens * IN_PRICE + row.completion_tokens * OUT_PRICE
        assert (row.prompt_tokens, row.completion_tokens) == (99, 16)
        total += row.cost
    price = Price(IN_PRICE, OUT_PRICE)
    largest = max(from_units(estimate_cost_units(price, body=b, body_bytes=len(json.dumps(b)) + 64)) for b in bodies)
    assert total <= Decimal("0.0131") + largest
    key.refresh_from_db()
    assert key.spend == total
    message = json.loads(refused[0][2])["error"]["message"]
    assert message.startswith("Budget has been exceeded! key 'budget-200' budget exceeded: spend $")
    assert "max_budget $0.0131" in message


def test_rpm_limit_60_and_a_burst_of_100_across_two_workers(redis_client, fake_provider, django_db_setup):
    plaintext, _ = make_key(rpm_limit=60)
    server = start_gateway({"model_list": priced_model_list(fake_provider.url)}, workers=2)
    try:
        results = asyncio.run(fire(server.url, plaintext, [body_for(i, stream=False) for i in range(100)]))
    finally:
        server.stop()
    statuses = [status for status, _, _ in results]
    assert statuses.count(200) == 60 and statuses.count(429) == 40
    refused = next(r for r in results if r[0] == 429)
    assert refused[1]["x-ratelimit-limit-requests"] == "60"
    assert refused[1]["x-ratelimit-remaining-requests"] == "0"
    assert int(refused[1]["retry-after"]) >= 1
    served = sorted(int(h["x-ratelimit-remaining-requests"]) for status, h, _ in results if status == 200)
    assert served == list(range(60))           # admitted answers carry the headers too, one count each


def test_redis_stopped_under_load_fails_no_request(fake_provider, django_db_setup, tmp_path):
    from billing.models import SpendLog

    own = OwnRedis(tmp_path)
    own.start()
    plaintext, key = make_key(rpm_limit=100000, max_budget=Decimal("100"))
    server = start_gateway({"model_list": priced_model_list(fake_provider.url)}, env={"REDIS_URL": own.url})
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def client_loop(n: int):
        parts = urlsplit(server.url)
        i = 0
        while not stop.is_set():
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            try:
                body = body_for(n * 100000 + i, stream=i % 2 == 0)
                connection.request("POST", "/v1/chat/completions", body=json.dumps(body),
                                   headers={"authorization": f"Bearer {plaintext}", "content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                results.append((response.status, response.getheader("x-request-id")))
            finally:
                connection.close()
            i += 1

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        wait_until(lambda: len(results) >= 10, what="answers before the outage")
        # Stopped, not killed: a paused Redis keeps its data (this one has no persistence), so
        # this is an outage, not data loss; the gateway sees connections that do not answer.
        os.kill(own.process.pid, signal.SIGSTOP)
        wait_until(lambda: "redis unreachable" in server.output(), what="the gateway to notice the outage")
        at_notice = len(results)
        wait_until(lambda: len(results) >= at_notice + 10, what="answers during the outage")
        os.kill(own.process.pid, signal.SIGCONT)
        wait_until(lambda: "redis reachable again" in server.output(), what="the gateway to see Redis back")
        back = len(results)
        wait_until(lambda: len(results) >= back + 10, what="answers after the outage")
        stop.set()
        for thread in threads:
            thread.join(timeout=90)
        during = len(results)
    finally:
        stop.set()
        server.stop()
    log = server.output()
    try:
        drain_all(own.url)
    finally:
        own.stop()
    statuses = [status for status, _ in results]
    assert during > 20 and set(statuses) == {200}, (set(statuses), log[-3000:])
    assert "redis unreachable" in log
    ids = [rid for _, rid in results]
    rows = SpendLog.objects.filter(key_id=key.pk)
    assert rows.count() == len(ids)
    assert sorted(rows.values_list("request_id", flat=True)) == sorted(ids)


def test_a_stream_the_client_drops_is_billed_for_what_it_received(redis_client, fake_provider, django_db_setup):
    from billing import tokens
    from billing.models import SpendLog

    plaintext, key = make_key()
    server = start_gateway({"model_list": priced_model_list(fake_provider.url)})
    try:
        parts = urlsplit(server.url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        connection.request("POST", "/v1/chat/completions", body=json.dumps(
            {"model": "mock-drip-50", "messages": [{"role": "user", "content": "tell me a story"}], "stream": True,
             "max_tokens": 200}), headers={"authorization": f"Bearer {plaintext}", "content-type": "application/json"})
        response = connection.getresponse()
        request_id = response.getheader("x-request-id")
        received = ""
        while received.count("lorem") < 4:
            line = response.fp.readline().decode()
            if line.startswith("data: {"):
                received += json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        connection.sock.close()          # the client goes away mid-stream
        connection.close()

        def booked():
            drain_all()
            return SpendLog.objects.filter(request_id=request_id).first()

        row = wait_until(booked, what="the dropped stream's spend row")
    finally:
        server.stop()
    assert row.key_id == key.pk
    assert row.metadata.get("client_disconnected") and row.metadata.get("usage_estimated")
    assert tokens.count_text(received) <= row.completion_tokens < 200
    assert row.prompt_tokens == tokens.count_prompt({"messages": [{"role": "user", "content": "tell me a story"}]})


def test_embedded_mode_writes_every_request_by_a_graceful_shutdown(fake_provider, django_db_setup):
    """No Redis: spend goes through the in-process batch writer, flushed when the server stops."""
    from billing.models import SpendLog

    plaintext, key = make_key(rpm_limit=1000)
    server = start_gateway({"model_list": priced_model_list(fake_provider.url)}, env={"REDIS_URL": ""})
    try:
        results = asyncio.run(fire(server.url, plaintext, [body_for(i, stream=i % 2 == 1) for i in range(20)]))
    finally:
        server.stop()                                  # SIGTERM: lifespan shutdown flushes the batch
    assert [status for status, _, _ in results] == [200] * 20
    assert "redis" not in server.output().split("\n  models:")[0]     # the banner: no Redis configured
    rows = SpendLog.objects.filter(key_id=key.pk)
    assert sorted(rows.values_list("request_id", flat=True)) == sorted(h["x-request-id"] for _, h, _ in results)
    key.refresh_from_db()
    assert key.spend == sum(rows.values_list("cost", flat=True), Decimal(0)) > 0
