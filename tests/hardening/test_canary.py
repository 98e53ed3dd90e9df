"""Canary-key sweep: keys with unique markers driven through every outcome, then searched for everywhere.

A virtual key and a provider key each carry a random marker. The virtual key is sent through a
200 (plain and streamed), 401 (an unknown canary key), 401 (model not allowed, as LiteLLM answers), budget 429, rate
429, upstream 5xx, upstream timeout and a stream the client cancels. Then every place a secret
could leak is searched for either marker: the responses (bodies and headers), the server log (at
debug level), every Redis key and value including the spend stream Celery drains, exported trace
spans (OTLP captured by a local HTTP server), and every row of every table of the database.
"""
from __future__ import annotations

import http.client
import http.server
import json
import secrets
import threading
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.db import connection

from tests.conftest import start_gateway, wait_until
from tests.factories import make_key
from tests.gateway.helpers import bearer, post

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hi"}]


class OtlpCapture:
    """An HTTP server that accepts OTLP/HTTP exports and keeps their raw bytes."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                received.append(bytes(self.headers) + self.rfile.read(length))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _database_text() -> str:
    """Every row of every table, as text (what a database dump would show)."""
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - names from introspection
            for row in cursor.fetchall():
                parts.append(" ".join(bytes(v).decode("latin-1") if isinstance(v, (bytes, memoryview)) else str(v)
                                      for v in row))
    return "\n".join(parts)


def _redis_text(client) -> str:
    """Every key and value in a Redis database (strings, hashes, lists, sets, zsets, streams)."""
    parts = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts.append(key.decode("latin-1"))
        if kind == "string":
            parts.append(repr(client.get(key)))
        elif kind == "hash":
            parts.append(repr(client.hgetall(key)))
        elif kind == "list":
            parts.append(repr(client.lrange(key, 0, -1)))
        elif kind == "set":
            parts.append(repr(client.smembers(key)))
        elif kind == "zset":
            parts.append(repr(client.zrange(key, 0, -1, withscores=True)))
        elif kind == "stream":
            parts.append(repr(client.xrange(key)))
    return "\n".join(parts)


def _cancelled_stream(url: str, key: str) -> None:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(
        {"model": "mock-drip-50", "messages": HELLO, "stream": True, "max_tokens": 100}),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    response.fp.readline()
    response.fp.readline()
    conn.sock.close()
    conn.close()


def test_canary_keys_leak_nowhere(own_redis, fake_provider, django_db_setup):
    from billing.connections import STREAM
    from billing.models import SpendLog
    from billing.queue import drain

    marker = secrets.token_hex(12)
    canary = f"sk-canary{marker}Zq"
    unknown = f"sk-canary{marker}Unknown"
    provider_marker = secrets.token_hex(12)
    provider_key = f"sk-provider{provider_marker}"
    secrets_to_find = {"virtual key": marker, "provider key": provider_marker}

    key, row = make_key(plaintext=canary, key_alias="canary", rpm_limit=12,
                        allowed_models=["mock-gpt", "priced", "mock-500", "mock-hang", "mock-drip-50"])
    budget_key, _ = make_key(plaintext=f"sk-canary{marker}Budget", key_alias="canary-budget",
                             max_budget=Decimal("0.00001"))
    v1 = f"{fake_provider.url}/v1"
    models = [
        {"model_name": "mock-gpt", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1,
                                                      "api_key": provider_key}},
        {"model_name": "priced", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1, "api_key": provider_key},
         "model_info": {"input_cost_per_token": "0.001", "output_cost_per_token": "0.001"}},
        {"model_name": "mock-500", "litellm_params": {"model": "openai/mock-500", "api_base": v1,
                                                      "api_key": provider_key}},
        {"model_name": "mock-hang", "litellm_params": {"model": "openai/mock-hang", "api_base": v1,
                                                       "api_key": provider_key, "timeout": 1}},
        {"model_name": "mock-drip-50", "litellm_params": {"model": "openai/mock-drip-50", "api_base": v1,
                                                          "api_key": provider_key}},
        {"model_name": "mock-claude", "litellm_params": {"model": "anthropic/mock-claude",
                                                         "api_base": fake_provider.url, "api_key": provider_key}},
    ]
    otlp = OtlpCapture()
    server = start_gateway({"model_list": models, "router_settings": {"num_retries": 0}, "log_level": "debug",
                            "otel": {"exporter_otlp_endpoint": otlp.url}},
                           env={"REDIS_URL": own_redis.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    answers: list[str] = []
    outcomes: dict[int, int] = {}

    def call(model: str, use: str = key, **extra):
        status, headers, body = post(server.url, "/v1/chat/completions",
                                     {"model": model, "messages": HELLO, "max_tokens": 2, **extra}, bearer(use))
        answers.append(json.dumps(headers) + json.dumps(body))
        outcomes[status] = outcomes.get(status, 0) + 1
        return status, body

    try:
        assert call("mock-gpt")[0] == 200
        assert call("mock-gpt", stream=True)[0] == 200
        assert call("mock-gpt", use=unknown)[0] == 401
        assert call("mock-claude")[0] == 401
        assert call("mock-500")[0] == 502
        assert call("mock-hang")[0] == 504
        _cancelled_stream(server.url, key)
        budget = [call("priced", use=budget_key) for _ in range(3)]
        assert any(s == 429 and b["error"]["type"] == "budget_exceeded" for s, b in budget), budget
        while True:                       # rpm 12: the rest of the minute is refused
            status, body = call("mock-gpt")
            if status == 429:
                break
        assert outcomes.get(429, 0) >= 2
        wait_until(lambda: otlp.received, what="the trace batch to be exported")
    finally:
        server.stop()
        otlp.close()
    redis_dump = _redis_text(own_redis.client())
    # The spend events Celery drains are in the dump to search: the stream, holding this key's events.
    assert STREAM in redis_dump and f'"key_id":{row.pk},' in redis_dump
    drain(client=own_redis.client(), max_seconds=30)
    assert SpendLog.objects.filter(key_id=row.pk).exists()
    places = {
        "responses": "\n".join(answers),
        "server log": server.output(),
        "redis (spend stream, caches)": redis_dump,
        "database": _database_text(),
        "trace export": b"".join(otlp.received).decode("latin-1"),
    }
    assert otlp.received, "no spans were exported; the trace check would prove nothing"
    assert "canary" in places["server log"]               # the key alias is logged: the log is searchable
    for what, secret in secrets_to_find.items():
        for where, text in places.items():
            assert secret not in text, f"the {what} leaked into {where}"
