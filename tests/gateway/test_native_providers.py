"""Azure and Ollama deployments through the whole pipeline, against a small fake of their native APIs.

The fake provider speaks the OpenAI and Anthropic paths only; this fake answers Azure's
deployment-scoped URLs and Ollama's /api/chat (NDJSON streams) and /api/embed with payloads in the
shapes those services send, and records what it was sent.
"""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
from aiohttp import web

from tests.conftest import free_port
from tests.factories import make_key

HELLO = [{"role": "user", "content": "hi"}]


class FakeProvider:
    def __init__(self):
        self.seen: list[dict] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _azure(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append({"path": request.path, "query": dict(request.query), "api-key": request.headers.get("api-key"),
                          "body": body})
        return web.json_response({"id": "chatcmpl-az", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                                  "choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": "from azure"}}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})

    async def _ollama_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.seen.append({"path": request.path, "body": body})
        if not body.get("stream"):
            return web.json_response({"model": body["model"], "created_at": "2024-07-22T20:33:28Z",
                                      "message": {"role": "assistant", "content": "from ollama"}, "done": True,
                                      "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2})
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for word in ("from", " ollama"):
            await response.write(json.dumps({"model": body["model"], "message": {"role": "assistant", "content": word},
                                             "done": False}).encode() + b"\n")
        await response.write(json.dumps({"model": body["model"], "message": {"role": "assistant", "content": ""},
                                         "done": True, "done_reason": "stop", "prompt_eval_count": 5,
                                         "eval_count": 2}).encode() + b"\n")
        return response

    async def _ollama_embed(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen.append({"path": request.path, "body": body})
        return web.json_response({"model": body["model"], "embeddings": [[0.5, 0.25]] * len(body["input"]),
                                  "prompt_eval_count": 4})

    def start(self):
        app = web.Application()
        app.router.add_post("/openai/deployments/{name}/chat/completions", self._azure)
        app.router.add_post("/api/chat", self._ollama_chat)
        app.router.add_post("/api/embed", self._ollama_embed)
        self.thread.start()

        async def serve():
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(serve(), self.loop).result(10)

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def fake():
    server = FakeProvider()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def deployments(fake, transactional_db):
    from accounts.keys import secret_encrypt
    from gateway.models import ModelDeployment

    ModelDeployment.objects.create(deployment_id="db-azure", model_name="azure-gpt", provider="azure", litellm_params={
        "model": "azure/gpt4o-eu", "api_base": fake.url, "api_version": "2024-06-01",
        "api_key": {"encrypted": secret_encrypt("azure-secret-key")}})
    ModelDeployment.objects.create(deployment_id="db-ollama", model_name="local-llama", provider="ollama",
                                   litellm_params={"model": "ollama/llama3.2", "api_base": fake.url})
    fake.seen.clear()
    return fake


def _request(path: str, body: dict, key: str, stream: bool = False):
    """One in-process request on its own event loop; a stream is read to the end."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from gateway import http

    async def call():
        try:
            response = await AsyncClient().post(path, json.dumps(body), content_type="application/json",
                                                headers={"authorization": f"Bearer {key}"})
            content = b"".join([part async for part in response.streaming_content]) if stream else response.content
            return response, content
        finally:
            await http.close_clients()

    return async_to_sync(call)()


def test_azure_deployment_answers_chat(deployments, transactional_db):
    response, content = _request("/v1/chat/completions", {"model": "azure-gpt", "messages": HELLO}, make_key().plaintext)
    assert response.status_code == 200, content
    assert json.loads(content)["choices"][0]["message"]["content"] == "from azure"
    seen = deployments.seen[-1]
    assert seen["path"] == "/openai/deployments/gpt4o-eu/chat/completions"
    assert seen["query"] == {"api-version": "2024-06-01"} and seen["api-key"] == "azure-secret-key"
    assert seen["body"]["model"] == "gpt4o-eu"


def test_ollama_chat_embeddings_and_stream(deployments, transactional_db):
    key = make_key().plaintext
    response, content = _request("/v1/chat/completions", {"model": "local-llama", "messages": HELLO, "max_tokens": 9},
                                 key)
    assert response.status_code == 200, content
    answer = json.loads(content)
    assert answer["choices"][0]["message"]["content"] == "from ollama"
    assert answer["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert deployments.seen[-1]["body"]["options"] == {"num_predict": 9}

    response, content = _request("/v1/chat/completions", {"model": "local-llama", "messages": HELLO, "stream": True,
                                                          "stream_options": {"include_usage": True}}, key, stream=True)
    assert response.status_code == 200
    events = [line[6:] for line in content.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "from ollama"
    assert chunks[-1]["usage"]["completion_tokens"] == 2

    response, content = _request("/v1/embeddings", {"model": "local-llama", "input": ["a", "b"]}, key)
    assert response.status_code == 200
    assert [d["embedding"] for d in json.loads(content)["data"]] == [[0.5, 0.25], [0.5, 0.25]]


def test_anthropic_messages_on_an_ollama_model(deployments, transactional_db):
    response, content = _request("/v1/messages", {"model": "local-llama", "max_tokens": 5, "messages": HELLO},
                                 make_key().plaintext)
    assert response.status_code == 200, content
    message = json.loads(content)
    assert message["content"] == [{"type": "text", "text": "from ollama"}]
    assert message["usage"] == {"input_tokens": 5, "output_tokens": 2}
