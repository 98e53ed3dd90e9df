"""Routing tests drive a real llmur server (tests.conftest.start_gateway: the tests' database, Redis and
application secret) with a routing config of their own, as a client would."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections import Counter

import pytest

from tests.conftest import start_gateway


class Answer:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def deployment(self) -> str | None:
        return self.headers.get("x-llmur-model-deployment")


class Client:
    """Requests to a running server, with its master key unless told otherwise."""

    def __init__(self, server):
        self.server, self.url, self.master_key = server, server.url, server.master_key

    def request(self, method: str, path: str, body: dict | None = None, key: str | None = None,
                headers: dict | None = None) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {key or self.master_key}", "Content-Type": "application/json",
            **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.headers, exc.read())

    def chat(self, model: str, content: str | None = None, **extra) -> Answer:
        """A chat completion; the default content is unique, so the response cache never answers it."""
        headers, key = extra.pop("headers", None), extra.pop("key", None)
        content = content if content is not None else f"hello {uuid.uuid4().hex}"
        return self.request("POST", "/v1/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": content}], **extra}, key=key, headers=headers)


@pytest.fixture(scope="module")
def start_router_gateway(django_db_setup):
    """Start a server with a config; every server started is stopped at the end of the module."""
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL (scripts/test sets it): routing state is shared through Redis")
    started = []

    def start(config: dict, workers: int = 1) -> Client:
        server = start_gateway(config, workers=workers)
        started.append(server)
        return Client(server)

    yield start
    for server in started:
        server.stop()


def deployment(name: str, upstream_model: str, upstream, group: str, **params) -> dict:
    """A model_list entry pointing at the fake provider, with a fixed id (the response header's value)."""
    return {"model_name": group, "model_info": {"id": name},
            "litellm_params": {"model": f"openai/{upstream_model}", "api_base": upstream.url + "/v1",
                               "api_key": "sk-upstream-test", **params}}


def by_model(upstream) -> Counter:
    """How many requests each upstream model name of the fake provider has answered."""
    return Counter(upstream.stats()["by_model"])
