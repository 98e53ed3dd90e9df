"""Streams under faults: an upstream that breaks off, and a client that goes away."""
from __future__ import annotations

import asyncio
import http.client
import json
import time
import uuid
from urllib.parse import urlsplit

import anthropic
import openai
import pytest

from tests.conftest import wait_until
from tests.factories import make_key
from tests.gateway.helpers import bearer, sse_lines

HELLO = [{"role": "user", "content": "hi"}]


def stream_outcomes(fake_provider, model: str) -> dict[str, int]:
    """How the fake provider's streams of one model ended: completed, aborted, cut."""
    return fake_provider.stats()["streams_by_model"].get(model, {"completed": 0, "aborted": 0, "cut": 0})


@pytest.fixture
def key(transactional_db) -> str:
    return make_key(key_alias="stream tests").plaintext


def test_stream_headers_stop_proxy_buffering(gateway, key):
    parts = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", "/v1/chat/completions", body=json.dumps(
        {"model": "mock-gpt", "messages": HELLO, "stream": True, "max_tokens": 2}), headers=bearer(key))
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("content-type").startswith("text/event-stream")
    assert response.getheader("cache-control") == "no-cache"
    assert response.getheader("x-accel-buffering") == "no"
    lines = [line for line in response.read().decode().split("\n") if line]
    connection.close()
    assert lines[-1] == "data: [DONE]"


def test_upstream_cut_mid_stream_ends_with_an_error_event(gateway, key):
    status, lines = sse_lines(gateway.url, "/v1/chat/completions",
                              {"model": "mock-cut", "messages": HELLO, "stream": True}, bearer(key))
    assert status == 200
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert [e["choices"][0]["delta"]["content"] for e in events[:3]] == ["lorem "] * 3
    assert events[-1]["error"]["type"] == "api_error"
    assert "broke off the stream" in events[-1]["error"]["message"]
    assert "data: [DONE]" not in lines


def test_upstream_cut_raises_in_the_openai_sdk(gateway, key):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="mock-cut", messages=HELLO, stream=True):
            received.append(chunk)
    assert len(received) == 3


def test_upstream_cut_raises_in_the_anthropic_sdk(gateway, key):
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    for model in ("mock-claude-cut", "mock-cut"):  # native Anthropic stream, and translated from OpenAI
        with pytest.raises(anthropic.APIStatusError) as failed:
            with claude.messages.stream(model=model, max_tokens=20, messages=HELLO) as stream:
                for _ in stream.text_stream:
                    pass
        assert "stream" in str(failed.value)


@pytest.mark.parametrize("path,model", [
    ("/v1/chat/completions", "mock-leaves-chat-drip-50"),
    ("/v1/messages", "mock-leaves-messages-drip-50"),
])
def test_client_disconnect_closes_the_upstream_connection(gateway, fake_provider, key, path, model):
    payload = {"model": model, "messages": HELLO, "stream": True, "max_tokens": 200}
    before = fake_provider.stats()["open_connections"]
    ended = stream_outcomes(fake_provider, model)   # this test's earlier runs (pytest --count), if any
    parts = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("POST", path, body=json.dumps(payload), headers={**bearer(key), "x-api-key": key})
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith((b"data: ", b"event: "))  # the stream is flowing
    assert fake_provider.stats()["open_connections"] >= 1
    connection.sock.close()
    connection.close()
    # The gateway cancels the upstream call: the mock sees its client go away mid-stream. Only this
    # test sends this model, so its outcomes are this stream's alone, whatever else is running.
    wait_until(lambda: stream_outcomes(fake_provider, model)["aborted"] == ended["aborted"] + 1,
               what="upstream to see the stream aborted")
    assert stream_outcomes(fake_provider, model) == {**ended, "aborted": ended["aborted"] + 1}
    wait_until(lambda: fake_provider.stats()["open_connections"] <= before, what="the upstream connection to close")


def test_stream_the_client_left_before_it_started_still_closes_upstream(fake_provider, transactional_db):
    """The ASGI handler's close hook ends a relay that was never iterated: upstream closed, no leak."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncRequestFactory

    from gateway import http, pipeline
    from gateway.models import ModelDeployment

    upstream_model = f"mock-{uuid.uuid4().hex}-drip-50"   # this test's alone: its outcomes are this stream's
    ModelDeployment.objects.create(deployment_id="db-drip", model_name="drip", provider="openai", litellm_params={
        "model": f"openai/{upstream_model}", "api_base": f"{fake_provider.url}/v1"})
    key = make_key().plaintext

    async def scenario():
        try:
            request = AsyncRequestFactory().post(
                "/v1/chat/completions", json.dumps({"model": "drip", "messages": HELLO, "stream": True,
                                                    "max_tokens": 100}),
                content_type="application/json", headers={"authorization": f"Bearer {key}"})
            response = await pipeline.run(request, "chat")
            assert response.status_code == 200 and response.streaming
            await response.llmur_close()   # what llmur.asgi does when the client is gone before sending began
            # Checked while the upstream session is still open: only closing the call itself ends the stream.
            deadline = time.monotonic() + 60      # a safety net: the loop ends as soon as upstream saw it
            while not stream_outcomes(fake_provider, upstream_model)["aborted"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return stream_outcomes(fake_provider, upstream_model)
        finally:
            await http.close_clients()

    stats = async_to_sync(scenario)()
    assert stats == {"completed": 0, "aborted": 1, "cut": 0}
