"""Fault cases that need no broken link: an upstream that stalls mid-stream, a burst on a budget."""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import time
from decimal import Decimal
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import start_gateway
from tests.factories import make_key
from tests.gateway.helpers import bearer, post

pytestmark = [pytest.mark.serial, pytest.mark.django_db(transaction=True)]

IN_PRICE, OUT_PRICE = Decimal("0.000001"), Decimal("0.000002")


def drain(redis_url: str) -> None:
    import redis

    from billing.queue import drain as drain_stream

    client = redis.Redis.from_url(redis_url)
    try:
        drain_stream(client=client, max_seconds=60)
    finally:
        client.close()


def test_an_upstream_that_stalls_after_the_first_chunk_is_ended_billed_and_frees_its_worker(
        redis_client, fake_provider, django_db_setup):
    from billing.models import SpendLog

    key, row = make_key(key_alias="stall", max_parallel_requests=1)
    v1 = f"{fake_provider.url}/v1"
    server = start_gateway({"model_list": [
        {"model_name": "stalls", "litellm_params": {"model": "openai/mock-drip-600000", "api_base": v1,
                                                    "stream_timeout": 1}},
        {"model_name": "mock-gpt", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1}}],
        "router_settings": {"num_retries": 0}})
    try:
        fake_provider.reset()
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        started = time.monotonic()
        conn.request("POST", "/v1/chat/completions", body=json.dumps(
            {"model": "stalls", "messages": [{"role": "user", "content": "go"}], "stream": True, "max_tokens": 50}),
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        request_id = response.getheader("x-request-id")
        lines = [line for line in response.read().decode().split("\n") if line.startswith("data: ")]
        elapsed = time.monotonic() - started
        conn.close()
        # The first chunk went through, then nothing for stream_timeout (1 s): an error event ends the stream.
        assert json.loads(lines[0][6:])["choices"][0]["delta"]["content"] == "lorem "
        error = json.loads(lines[-1][6:])["error"]
        assert error["type"] == "timeout" and "sent nothing for 1 s" in error["message"]
        assert elapsed < 20      # not the 600 s the upstream would have taken
        # Nothing is left in flight (the relay ended and settled), and the key's single parallel slot is free.
        assert _in_flight(server) == 0
        status, _, body = post(server.url, "/v1/chat/completions",
                               {"model": "mock-gpt", "messages": [{"role": "user", "content": "next"}], "max_tokens": 1},
                               bearer(key))
        assert status == 200, body
    finally:
        server.stop()
    drain(os.environ["REDIS_URL"])
    spent = SpendLog.objects.get(request_id=request_id)
    # The chunk delivered before the stall is billed (counted from the text, as usage never came).
    assert spent.key_id == row.pk and spent.completion_tokens >= 1 and spent.metadata.get("usage_estimated")


def _in_flight(server) -> float:
    import urllib.request

    request = urllib.request.Request(f"{server.url}/metrics", headers={"authorization": f"Bearer {server.master_key}"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("llmur_requests_in_flight")]
    assert values, "llmur_requests_in_flight is not exported"
    return sum(values)


def _priced(upstream_url: str) -> list[dict]:
    return [{"model_name": "priced", "litellm_params": {"model": "openai/mock-gpt", "api_base": f"{upstream_url}/v1"},
             "model_info": {"input_cost_per_token": str(IN_PRICE), "output_cost_per_token": str(OUT_PRICE)}}]


def _body(i: int) -> dict:
    return {"model": "priced", "messages": [{"role": "user", "content": f"request {i:04d} " + "lorem " * 64}],
            "max_tokens": 16}


async def _burst(url: str, key: str, bodies: list[dict]) -> list[tuple[int, str, str]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(body):
            async with session.post(f"{url}/v1/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as response:
                return response.status, response.headers.get("x-request-id", ""), await response.text()
        return await asyncio.gather(*(one(b) for b in bodies))


def test_fifty_at_once_on_two_workers_against_a_budget_for_ten(redis_client, fake_provider,
                                                               django_db_setup):
    from billing.models import SpendLog
    from billing.pricing import Price, estimate_cost_units, from_units

    # One request costs 99 prompt + 16 completion tokens = $0.000131: the budget fits exactly ten.
    budget = Decimal("0.000131") * 10
    key, row = make_key(key_alias="burst", max_budget=budget)
    server = start_gateway({"model_list": _priced(fake_provider.url)}, workers=2)
    try:
        bodies = [_body(i) for i in range(50)]
        results = asyncio.run(_burst(server.url, key, bodies))
    finally:
        server.stop()
    drain(os.environ["REDIS_URL"])
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] != 200]
    assert 1 <= len(ok) <= 10, [r[0] for r in results]
    assert all(status == 429 and json.loads(text)["error"]["type"] == "budget_exceeded" for status, _, text in refused)
    rows = SpendLog.objects.filter(key_id=row.pk)
    assert sorted(rows.values_list("request_id", flat=True)) == sorted(rid for _, rid, _ in ok)
    settled = sum(rows.values_list("cost", flat=True), Decimal(0))
    largest = max(from_units(estimate_cost_units(Price(IN_PRICE, OUT_PRICE), body=b, body_bytes=len(json.dumps(b))))
                  for b in bodies)
    row.refresh_from_db()
    assert row.spend == settled <= budget + largest
