"""Attacks on the /v1 API through a real server: auth header fuzz, SSRF, hostile bodies, header smuggling.

Each test fails if the hole it names is there. The upstream is the shared mock provider, whose
/stats show what reached it (requests, credentials_seen).
"""
from __future__ import annotations

import socket
import statistics
import time
import uuid
from urllib.parse import urlsplit

import orjson
import psutil
import pytest

from tests.conftest import mock_model_list, start_gateway
from tests.factories import make_key
from tests.gateway.helpers import bearer, post

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hi"}]


def raw_request(url: str, head: bytes, body: bytes = b"", timeout: float = 30) -> tuple[int, bytes, float]:
    """Send bytes as they are (no client-side header checks); returns (status, whole answer, seconds)."""
    parts = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) and closed before taking it all: read what it said
        received = read_answer(sock)
    elapsed = time.monotonic() - started
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0
    return status, received, elapsed


def read_answer(sock: socket.socket) -> bytes:
    """Read one HTTP answer: up to its Content-Length, or until the server closes or resets."""
    received = b""
    while b"\r\n\r\n" not in received or not _complete(received):
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            break
        if not chunk:
            break
        received += chunk
    return received


def _complete(received: bytes) -> bool:
    head, _, body = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def chat_head(url: str, auth_lines: list[bytes], length: int, extra: bytes = b"") -> bytes:
    host = urlsplit(url).netloc.encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
            + b"".join(line + b"\r\n" for line in auth_lines) + extra
            + b"Content-Length: " + str(length).encode() + b"\r\nConnection: close\r\n\r\n")


CHAT = orjson.dumps({"model": "mock-gpt", "messages": HELLO, "max_tokens": 1})


def fuzz_values(marker: str) -> list[bytes]:
    """Authorization header values an attacker sends; marker keeps every one distinct (no negative cache hit)."""
    return [
        f"Bearer ' OR '1'='1' -- {marker}".encode(),
        f"Bearer sk-{marker}' OR 1=1; --".encode(),
        f"Bearer sk-{marker}'; SELECT pg_sleep(5); --".encode(),
        f"Bearer sk-{marker}' || (SELECT pg_sleep(5)) || '".encode(),
        f"Bearer sk-{marker}\") OR (\"1\"=\"1".encode(),
        f"Bearer sk-{marker}\\x00' UNION SELECT key_hash FROM accounts_virtualkey --".encode(),
        f"Bearer sk-{marker}\x00admin".encode(),
        b"Bearer sk-" + marker.encode() + b"\xff\xfe\xc3\x28",
        b"Bearer ",
        b"Bearer",
        b"bearer    ",
        f"Basic {marker}".encode(),
        f"Bearer sk-{marker}".encode() + b"A" * 10_240,
        b"Bearer " + ("\u00e9" * 50 + marker).encode(),
    ]


def test_auth_header_fuzz_is_always_a_fast_401_or_400(gateway, fake_provider):
    """SQL tautologies, pg_sleep, quotes, NUL, non-UTF-8, 10 KB, empty bearer: 401/400, never 5xx, never slow."""
    fake_provider.reset()
    results = []
    for value in fuzz_values(uuid.uuid4().hex[:8]):
        status, answer, seconds = raw_request(gateway.url, chat_head(gateway.url, [b"Authorization: " + value],
                                                                     len(CHAT)), CHAT)
        results.append((value[:40], status, seconds))
        assert status in (400, 401), (value[:60], answer[:300])
        # pg_sleep(5) would show as 5 s; an answer takes milliseconds.
        assert seconds < 3, (value[:60], seconds)
        assert b"pg_sleep" not in answer and b"UNION" not in answer
    assert fake_provider.stats()["requests"] == 0
    log = gateway.output()
    assert "Traceback" not in log and "pg_sleep" not in log


def test_two_authorization_headers_are_refused(gateway):
    good, _ = make_key(key_alias="two-headers")
    for lines in ([f"Authorization: Bearer {good}".encode(), b"Authorization: Bearer sk-other"],
                  [b"Authorization: Bearer sk-other", f"Authorization: Bearer {good}".encode()]):
        status, answer, _ = raw_request(gateway.url, chat_head(gateway.url, lines, len(CHAT)), CHAT)
        assert status in (400, 401), answer[:300]
        assert good.encode() not in answer


def test_auth_time_does_not_depend_on_the_payload(gateway):
    """Medians of unknown well-formed keys vs. injection payloads and 10 KB values: within a generous factor.

    A security property (no query built from the payload, no work proportional to it), checked
    loosely so a busy two-core machine cannot fail it: the payload's median may not exceed three
    times the baseline plus 30 ms.
    """
    def timed(value: bytes) -> float:
        _, _, seconds = raw_request(gateway.url, chat_head(gateway.url, [b"Authorization: " + value], len(CHAT)),
                                    CHAT)
        return seconds

    baseline, hostile = [], []
    for round_ in range(15):
        marker = uuid.uuid4().hex
        baseline.append(timed(f"Bearer sk-{marker}".encode()))
        hostile.append(timed(f"Bearer sk-{marker}' OR (SELECT pg_sleep(1)) IS NULL --".encode()))
        hostile.append(timed(f"Bearer sk-{marker}".encode() + b"Z" * 10_240))
    assert statistics.median(hostile) <= 3 * statistics.median(baseline) + 0.03, (baseline, hostile)


# --------------------------------------------------------------------------- SSRF

def ssrf_bodies(target: str) -> list[tuple[dict, str]]:
    """(body, the field path the 400 must name) for every place a client could smuggle an upstream."""
    base = {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1}
    return [
        ({**base, "api_base": target}, "api_base"),
        ({**base, "base_url": target}, "base_url"),
        ({**base, "api_key": "sk-attacker"}, "api_key"),
        ({**base, "extra_body": {"api_base": target}}, "extra_body.api_base"),
        ({**base, "extra_body": {"litellm_params": {"base_url": target}}}, "extra_body.litellm_params.base_url"),
        ({**base, "metadata": {"api_base": target}}, "metadata.api_base"),
        ({**base, "litellm_params": {"api_base": target, "api_key": "sk-x"}}, None),
        ({**base, "extra_headers": {"Host": "evil"}}, "extra_headers"),
        ({**base, "stream_options": {"include_usage": True, "deep": [{"x": {"azure_ad_token": "t"}}]}},
         "stream_options.deep[0].x.azure_ad_token"),
        ({**base, "messages": [{"role": "user", "content": "hi", "api_base": target}]}, "messages[0].api_base"),
        # \u005f is "_": a JSON escape must not hide the name from the check.
        (None, "extra_body.api_base"),
    ]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/chat/completions"])
def test_client_supplied_upstream_fields_are_400_before_any_egress(gateway, capture_server, fake_provider,
                                                                 path):
    key, _ = make_key(key_alias="ssrf")
    fake_provider.reset()
    for body, field in ssrf_bodies(capture_server.url):
        if body is None:
            raw = b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, ' \
                  b'"extra_body": {"api\\u005fbase": "' + capture_server.url.encode() + b'"}}'
        else:
            if path == "/v1/embeddings":
                body = {k: v for k, v in body.items() if k != "messages"} | {"input": "hi"}
                if field and field.startswith("messages"):
                    continue
            raw = orjson.dumps(body)
        status, _, answer = post(gateway.url, path, raw, {**bearer(key), "api-base": capture_server.url,
                                                          "x-litellm-api-base": capture_server.url})
        assert status == 400, (body, answer)
        error = answer["error"]
        if field is not None:
            # The Anthropic error shape has no param: the message names the field there.
            assert error.get("param", field) == field and f"'{field}' cannot be set by clients" in error["message"] \
                and "configured by the operator" in error["message"], (field, error)
    assert capture_server.connections == []
    assert fake_provider.stats()["requests"] == 0


def test_tool_schemas_may_describe_an_api_key_property(gateway, fake_provider):
    """The SSRF check must not refuse a legitimate tool whose JSON Schema has a property named api_key."""
    key, _ = make_key(key_alias="tools")
    tool = {"type": "function", "function": {"name": "login", "parameters": {
        "type": "object", "properties": {"api_key": {"type": "string"}, "base_url": {"type": "string"}}}}}
    status, _, answer = post(gateway.url, "/v1/chat/completions",
                             {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1, "tools": [tool]}, bearer(key))
    assert status == 200, answer


def test_client_headers_cannot_point_the_call_elsewhere(gateway, capture_server, fake_provider):
    """Headers a LiteLLM deployment might honour (api-base, x-forwarded-host, host) change nothing: the answer
    comes from the configured upstream and the capture server sees no connection."""
    key, _ = make_key(key_alias="ssrf-headers")
    status, _, answer = post(gateway.url, "/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO,
                                                                   "max_tokens": 1},
                             {**bearer(key), "api-base": capture_server.url, "x-forwarded-host": capture_server.url,
                              "base-url": capture_server.url, "openai-api-base": capture_server.url})
    assert status == 200, answer
    assert capture_server.connections == []


# --------------------------------------------------------------------------- what reaches the upstream

def test_client_authorization_and_hop_by_hop_headers_never_reach_upstream(gateway, fake_provider):
    key, _ = make_key(key_alias="forwarding")
    fake_provider.reset()
    for path, body in [("/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1}),
                       ("/v1/messages", {"model": "mock-claude", "messages": HELLO, "max_tokens": 1}),
                       ("/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1,
                                                 "stream": True})]:
        status, _, answer = post(gateway.url, path, body, {
            **bearer(key), "x-api-key": key, "api-key": key, "proxy-authorization": "Basic c2VjcmV0",
            "te": "trailers", "upgrade": "websocket", "keep-alive": "timeout=999", "x-forwarded-for": "10.0.0.1"})
        assert status == 200, answer
    seen = fake_provider.stats()["credentials_seen"]
    assert seen and all(key not in value for value in seen)
    # Only the operator's provider keys were used.
    assert set(seen) <= {"Bearer sk-upstream-openai-secret", "sk-ant-upstream-secret", "Bearer", ""}, seen


def test_cr_lf_in_forwarded_headers_is_rejected(gateway, fake_provider):
    """A header value with CR/LF (response splitting / header injection toward the upstream) is refused."""
    key, _ = make_key(key_alias="crlf")
    fake_provider.reset()
    body = orjson.dumps({"model": "mock-claude", "messages": HELLO, "max_tokens": 1})
    for injected in (b"anthropic-version: 2023-06-01\r\nx-injected: 1", b"anthropic-beta: a\rx-injected: 1",
                     b"anthropic-beta: a\nAuthorization: Bearer sk-stolen"):
        host = urlsplit(gateway.url).netloc.encode()
        head = (b"POST /v1/messages HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
                b"x-api-key: " + key.encode() + b"\r\n" + injected + b"\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
        status, answer, _ = raw_request(gateway.url, head, body)
        # Either the HTTP layer refuses the malformed header (400), or the split line is just another
        # client header the gateway never forwards: nothing injected may reach the upstream.
        assert status in (200, 400), answer[:300]
    assert all("sk-stolen" not in value for value in fake_provider.stats()["credentials_seen"])


# --------------------------------------------------------------------------- hostile bodies

@pytest.fixture(scope="module")
def small_gateway(django_db_setup, fake_provider, tmp_path_factory):
    """A server of our own, so its memory is not shared with other tests' traffic."""
    server = start_gateway({"model_list": mock_model_list(fake_provider.url), "router_settings": {"num_retries": 0}},
                           env={"REDIS_URL": ""})
    yield server
    server.stop()


def _server_rss(server) -> int:
    process = psutil.Process(server.process.pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


def test_hostile_bodies_are_refused_before_being_read_whole(small_gateway, fake_provider):
    from billing.models import SpendLog

    key, row = make_key(key_alias="hostile")
    url = small_gateway.url
    fake_provider.reset()
    auth = [b"Authorization: Bearer " + key.encode()]
    fifty_mb = 50 * 1024 * 1024
    # Warm up the process (imports, first request) before measuring memory.
    assert post(url, "/v1/chat/completions", b"{}", bearer(key))[0] == 400
    before = _server_rss(small_gateway)

    # 50 MB declared honestly: 413 from the header alone, the body is never read.
    status, answer, _ = raw_request(url, chat_head(url, auth, fifty_mb), b"{" + b" " * 65536)
    assert status == 413 and b"max_request_body_bytes" in answer

    # 50 MB sent chunked (no length to trust): 413 once the limit is crossed, not after 50 MB.
    host = urlsplit(url).netloc.encode()
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer " + key.encode()
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        piece = b"[" * 1024 * 1024
        sent = 0
        try:
            while sent < fifty_mb:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the rest was still coming
        sock.settimeout(10)
        answer = read_answer(sock)
    # Answered, not just hung up on: the 413 that names the setting, before the 50 MB were sent.
    assert answer.startswith(b"HTTP/1.1 413") and b"max_request_body_bytes" in answer, answer[:200]
    assert sent < fifty_mb

    # A Content-Length that lies low: only that many bytes are the body (invalid JSON → 400).
    big = orjson.dumps({"model": "mock-gpt", "messages": HELLO * 1000})
    status, answer, _ = raw_request(url, chat_head(url, auth, 20), big)
    assert status == 400 and b"not valid JSON" in answer
    # A Content-Length that lies high: the server waits for bytes that never come; the client gives up,
    # the server stays healthy.
    with pytest.raises(socket.timeout):
        with socket.create_connection((parts.hostname, parts.port), timeout=2) as sock:
            sock.sendall(chat_head(url, auth, 5000) + CHAT)
            sock.recv(100)

    # Deep nesting: the parser's depth limit answers 400, no recursion error.
    deep = b'{"model": "mock-gpt", "messages": [{"role": "user", "content": "x"}], "n": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    status, answer, _ = raw_request(url, chat_head(url, auth, len(deep)), deep)
    assert status == 400 and b"not valid JSON" in answer
    deep_objects = b'{"model": "mock-gpt", "messages": ' + b'[{"a":' * 5000 + b"1" + b"}]" * 5000 + b"}"
    status, answer, _ = raw_request(url, chat_head(url, auth, len(deep_objects)), deep_objects)
    assert status == 400

    # A million messages: too big to read (413), or small enough to read and refused by validation (400).
    million = b'{"model": "mock-gpt", "messages": [' + b",".join([b'{"role":"user","content":"x"}'] * 1_000_000) + b"]}"
    status, _, _ = raw_request(url, chat_head(url, auth, len(million)), million)
    assert status == 413
    million_empty = b'{"model": "mock-gpt", "messages": [' + b",".join([b"{}"] * 1_000_000) + b"]}"
    status, answer, _ = raw_request(url, chat_head(url, auth, len(million_empty)), million_empty)
    assert status == 400 and b"messages[0].role" in answer

    after = _server_rss(small_gateway)
    # Flat memory: 50 MB bodies were never held; what was read is capped at max_request_body_bytes (10 MB).
    assert after - before < 48 * 1024 * 1024, (before, after)
    assert fake_provider.stats()["requests"] == 0
    assert not SpendLog.objects.filter(key_id=row.pk).exists()
    row.refresh_from_db()
    assert row.spend == 0
    # Still serving.
    status, _, answer = post(url, "/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1},
                             bearer(key))
    assert status == 200, answer
    assert "Traceback" not in small_gateway.output()


class _Exploit:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.path}",)


def test_a_poisoned_auth_cache_entry_in_redis_runs_no_code(gateway, redis_client, tmp_path):
    """Whoever can write to Redis must not get code execution in the web workers through the key cache."""
    import pickle

    from accounts.keys import key_digest

    helper, _ = make_key(key_alias="helper")
    target, _ = make_key(key_alias="target")
    request = {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1}
    assert post(gateway.url, "/v1/chat/completions", request, bearer(helper))[0] == 200
    helper_digest = key_digest(helper)
    cached = [k.decode() for k in redis_client.scan_iter(match=f"llmur:auth:*{helper_digest}")]
    assert cached, "the key cache entry was not found in Redis"
    poisoned = cached[0].replace(helper_digest, key_digest(target))
    marker = tmp_path / "pwned"
    redis_client.set(poisoned, pickle.dumps(("ok", _Exploit(str(marker)))), ex=300)
    status, _, body = post(gateway.url, "/v1/chat/completions", request, bearer(target))
    assert not marker.exists(), "the gateway unpickled code from Redis"
    assert status == 200, body            # looked up in the database instead
    assert "auth cache entry refused" in gateway.output()
