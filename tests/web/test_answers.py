"""The web layer around the apps, through a real server: body limits, unknown paths, headers, a database outage.

Audit findings 16.9 (a 50 MB body on the management API was a 500), 16.10 (a PostgreSQL outage
made the management API answer 500 after the pool timeout) and 16.12's web part (Django's HTML 404
outside /v1; no X-Content-Type-Options on /v1).
"""
from __future__ import annotations

import socket
from urllib.parse import urlsplit

import orjson
import pytest

from tests.conftest import mock_model_list, start_gateway
from tests.gateway.helpers import bearer, post
from tests.hardening.test_security import raw_request

pytestmark = pytest.mark.django_db(transaction=True)

FIFTY_MB = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def server(django_db_setup, fake_provider):
    server = start_gateway({"model_list": mock_model_list(fake_provider.url)})
    yield server
    server.stop()


def _management_head(url: str, key: str, length: int, path: str = "/key/generate") -> bytes:
    host = urlsplit(url).netloc.encode()
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nAuthorization: Bearer " + key.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n")


def _json_body(answer: bytes) -> dict:
    return orjson.loads(answer.partition(b"\r\n\r\n")[2])


def test_a_50mb_body_on_the_management_api_is_413_in_the_openai_shape(server):
    status, answer, _ = raw_request(server.url, _management_head(server.url, server.master_key, FIFTY_MB),
                                    b"{" + b" " * 65536)
    assert status == 413, answer[:300]
    error = _json_body(answer)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "413"
    assert "max_request_body_bytes" in error["message"]
    assert "RequestDataTooBig" not in server.output() and "Traceback" not in server.output()


def test_a_chunked_50mb_body_on_the_management_api_is_413_once_past_the_limit(server):
    parts = urlsplit(server.url)
    head = (b"POST /key/generate HTTP/1.1\r\nHost: " + parts.netloc.encode() + b"\r\nAuthorization: Bearer "
            + server.master_key.encode() + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece, sent = b" " * 1024 * 1024, 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head)
        try:
            while sent < FIFTY_MB:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert sent < FIFTY_MB
    assert "Traceback" not in server.output()


@pytest.mark.parametrize("method, path", [("GET", "/key/no-such-route"), ("GET", "/no/such/thing"),
                                          ("POST", "/team/nothing-here")])
def test_unknown_paths_outside_v1_answer_404_in_the_openai_shape(server, method, path):
    status, headers, body = post(server.url, path, None if method == "GET" else {}, bearer(server.master_key),
                                 method=method)
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert body["error"]["type"] == "not_found_error" and body["error"]["code"] == "404"
    assert path in body["error"]["message"]


def test_a_long_unknown_path_is_not_echoed_whole(server):
    path = "/x" + "y" * 5000
    status, _, body = post(server.url, path, None, bearer(server.master_key), method="GET")
    assert status == 404 and len(body["error"]["message"]) < 400


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/models", None),                                                   # /v1, bare handler, 200
    ("POST", "/v1/chat/completions", {"model": "mock-gpt", "messages": []}),       # /v1 error answer
    ("GET", "/v1/nothing-here", None),                                             # /v1 unknown endpoint
    ("GET", "/key/list", None),                                                    # management API
    ("GET", "/no/such/thing", None),                                               # unknown path, full chain
])
def test_api_answers_carry_nosniff(server, method, path, body):
    status, headers, _ = post(server.url, path, body, bearer(server.master_key), method=method)
    assert status < 500
    assert headers.get("x-content-type-options") == "nosniff", (status, headers)


def test_a_413_on_v1_carries_nosniff(server):
    status, answer, _ = raw_request(server.url, _management_head(server.url, server.master_key, FIFTY_MB,
                                                                 "/v1/chat/completions"), b"{")
    assert status == 413 and b"x-content-type-options: nosniff" in answer.lower()


def test_the_management_api_answers_503_json_while_postgres_is_unreachable(django_db_setup, fake_provider):
    from django.db import connection

    from tests.conftest import database_url_for_subprocess
    from tests.hardening.faultproxy import FaultProxy

    db = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("the pool timeout of this finding is PostgreSQL's (psycopg pool)")
    proxy = FaultProxy(int(db.get("PORT") or 5432), db.get("HOST") or "127.0.0.1")
    through_proxy = database_url_for_subprocess().replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
    server = start_gateway({"model_list": mock_model_list(fake_provider.url),
                            "database_configuration": {"pool_timeout": 2}}, env={"DATABASE_URL": through_proxy})
    try:
        assert post(server.url, "/key/list", None, bearer(server.master_key), method="GET")[0] == 200
        proxy.refuse(True)
        proxy.cut()
        statuses = [post(server.url, "/key/list", None, bearer(server.master_key), method="GET") for _ in range(3)]
        proxy.heal()
        recovered = post(server.url, "/key/list", None, bearer(server.master_key), method="GET")
    finally:
        server.stop()
        proxy.close()
    for status, headers, body in statuses:
        assert status == 503, body
        assert headers["content-type"] == "application/json"
        assert body["error"]["code"] == "503" and "database is unavailable" in body["error"]["message"]
    assert recovered[0] == 200
    assert "Internal error" not in server.output()
