"""Error answers as clients see them: status, OpenAI (or Anthropic) shape, messages that say what to fix."""
from __future__ import annotations

import anthropic
import openai
import pytest

from tests.factories import make_key
from tests.gateway.helpers import bearer, post

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def key(transactional_db) -> str:
    return make_key(key_alias="error tests").plaintext


def _openai_error(body) -> dict:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_missing_key_is_401_in_openai_shape(gateway):
    status, _, body = post(gateway.url, "/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO})
    assert status == 401
    error = _openai_error(body)
    assert error["type"] == "invalid_api_key" and error["code"] == "401"
    assert "Authorization: Bearer" in error["message"]


def test_unknown_key_is_401_and_never_echoed(gateway):
    bad = "sk-this-key-does-not-exist-1234567890"
    status, _, body = post(gateway.url, "/v1/chat/completions", {"model": "mock-gpt", "messages": HELLO}, bearer(bad))
    assert status == 401
    error = _openai_error(body)
    assert "token_not_found_in_db" in error["message"]
    assert bad not in str(body) and bad[-8:] not in str(body)
    assert bad not in gateway.output()


def test_x_api_key_header_authenticates(gateway, key):
    status, _, body = post(gateway.url, "/v1/chat/completions",
                           {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1}, {"x-api-key": key})
    assert status == 200, body


def test_malformed_json_is_400(gateway, key):
    status, _, body = post(gateway.url, "/v1/chat/completions", b'{"model": "mock-gpt", "messages": [', bearer(key))
    assert status == 400
    assert "not valid JSON" in _openai_error(body)["message"]


@pytest.mark.parametrize(("payload", "field"), [
    ({"model": "mock-gpt"}, "messages"),
    ({"messages": HELLO}, "model"),
    ({"model": "mock-gpt", "messages": HELLO, "stream": "yes"}, "stream"),
    ({"model": "mock-gpt", "messages": [{"content": "no role"}]}, "messages[0].role"),
    ({"model": "mock-gpt", "messages": HELLO, "max_tokens": "many"}, "max_tokens"),
])
def test_invalid_field_is_400_naming_the_field(gateway, key, payload, field):
    status, _, body = post(gateway.url, "/v1/chat/completions", payload, bearer(key))
    assert status == 400
    error = _openai_error(body)
    assert error["param"] == field and f"'{field}'" in error["message"]


@pytest.mark.parametrize("field", ["api_base", "base_url", "api_key"])
def test_clients_cannot_redirect_upstreams(gateway, key, fake_provider, field):
    payload = {"model": "mock-gpt", "messages": HELLO, field: "http://attacker.example/v1"}
    status, _, body = post(gateway.url, "/v1/chat/completions", payload, bearer(key))
    assert status == 400
    assert _openai_error(body)["param"] == field


def _raw_exchange(url: str, head: bytes, body: bytes = b"") -> bytes:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(head + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_declared_body_over_the_limit_is_413_before_reading_it(gateway, key):
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {11 * 1024 * 1024}\r\n\r\n").encode()
    answer = _raw_exchange(gateway.url, head)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"max_request_body_bytes" in answer and b'"error"' in answer


def test_chunked_body_over_the_limit_is_413_while_reading(gateway, key):
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    size = 10 * 1024 * 1024 + 1  # one byte over the default limit; the server stops reading there
    answer = _raw_exchange(gateway.url, head, b"%x\r\n" % size + b"x" * size + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"max_request_body_bytes" in answer


def test_unknown_model_is_404_saying_how_to_list_models(gateway, key):
    status, _, body = post(gateway.url, "/v1/chat/completions", {"model": "no-such-model", "messages": HELLO},
                           bearer(key))
    assert status == 404
    error = _openai_error(body)
    assert "/v1/models" in error["message"] and error["param"] == "model"


def test_disallowed_model_is_401_as_in_litellm_and_absent_from_models(gateway, transactional_db):
    key = make_key(allowed_models=["mock-claude"]).plaintext
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="mock-gpt", messages=HELLO)
    assert refused.value.status_code == 401
    assert "key not allowed to access model." in refused.value.message
    assert refused.value.body["type"] == "key_model_access_denied"
    assert [m.id for m in client.models.list()] == ["mock-claude"]
    status, _, _ = post(gateway.url, "/v1/models/mock-gpt", None, bearer(key), method="GET")
    assert status == 401
    assert client.chat.completions.create(model="mock-claude", messages=HELLO, max_tokens=1).choices


def test_team_allow_list_intersects_the_keys(gateway, transactional_db):
    from accounts.models import Team

    team = Team.objects.create(name="allow-list team", allowed_models=["mock-gpt", "mock-claude"])
    key = make_key(team=team, allowed_models=["mock-gpt", "mock-400"]).plaintext
    status, _, body = post(gateway.url, "/v1/models", None, bearer(key), method="GET")
    assert status == 200
    assert [m["id"] for m in body["data"]] == ["mock-gpt"]


def test_upstream_400_passes_through_with_message_and_code(gateway, key):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as failed:
        client.chat.completions.create(model="mock-400", messages=HELLO)
    assert failed.value.status_code == 400
    assert failed.value.code == "context_length_exceeded"
    assert "maximum context length" in failed.value.message


def test_upstream_500_is_502_in_openai_shape(gateway, key):
    status, headers, body = post(gateway.url, "/v1/chat/completions", {"model": "mock-500", "messages": HELLO},
                                 bearer(key))
    assert status == 502
    error = _openai_error(body)
    assert error["type"] == "api_error" and "HTTP 500" in error["message"]
    assert headers["x-llmur-model-deployment"]


def test_upstream_429_stays_429_with_retry_after(gateway, key):
    status, headers, body = post(gateway.url, "/v1/chat/completions", {"model": "mock-429", "messages": HELLO},
                                 bearer(key))
    assert status == 429
    assert headers["retry-after"] == "1"
    assert _openai_error(body)["type"] == "rate_limit_error"


def test_upstream_hang_is_504_after_the_deployment_timeout(gateway, key):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="mock-hang", messages=HELLO)
    assert failed.value.status_code == 504
    assert failed.value.body["type"] == "timeout"
    assert "within 1 s" in failed.value.message


def test_upstream_hang_on_a_stream_is_504_before_any_byte(gateway, key):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=30)
    with pytest.raises(openai.APIStatusError) as failed:
        list(client.chat.completions.create(model="mock-hang", messages=HELLO, stream=True))
    assert failed.value.status_code == 504


def test_messages_errors_use_the_anthropic_shape(gateway, key):
    claude = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="no-such-model", max_tokens=5, messages=HELLO)
    assert missing.value.body == {"type": "error", "error": {"type": "not_found_error",
                                                             "message": missing.value.body["error"]["message"]}}
    status, _, body = post(gateway.url, "/v1/messages", {"model": "mock-claude", "messages": HELLO}, {"x-api-key": key})
    assert status == 400
    assert body["type"] == "error" and "'max_tokens'" in body["error"]["message"]
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.url, api_key="sk-wrong", max_retries=0).messages.create(
            model="mock-claude", max_tokens=5, messages=HELLO)


def test_request_id_is_echoed_when_sane_and_replaced_when_not(gateway, key):
    payload = {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1}
    _, headers, _ = post(gateway.url, "/v1/chat/completions", payload, {**bearer(key), "x-request-id": "trace-42.a"})
    assert headers["x-request-id"] == "trace-42.a"
    _, headers, _ = post(gateway.url, "/v1/chat/completions", payload, {**bearer(key), "x-request-id": "bad id\t<>"})
    assert headers["x-request-id"] != "bad id\t<>" and len(headers["x-request-id"]) == 32


def test_unprefixed_paths_serve_the_same_api(gateway, key):
    status, _, body = post(gateway.url, "/chat/completions", {"model": "mock-gpt", "messages": HELLO, "max_tokens": 1},
                           bearer(key))
    assert status == 200 and body["choices"][0]["message"]["content"] == "lorem "
    status, _, body = post(gateway.url, "/models", None, bearer(key), method="GET")
    assert status == 200 and "mock-gpt" in [m["id"] for m in body["data"]]


def test_embeddings_not_offered_by_anthropic_models(gateway, key):
    status, _, body = post(gateway.url, "/v1/embeddings", {"model": "mock-claude", "input": "x"}, bearer(key))
    assert status == 400
    assert "does not support embedding" in _openai_error(body)["message"]


def test_unknown_endpoint_and_wrong_method_answer_in_the_api_shape(gateway, key):
    status, headers, body = post(gateway.url, "/v1/no-such-endpoint", {"x": 1}, bearer(key))
    assert status == 404 and headers["content-type"] == "application/json"
    assert "/docs" in _openai_error(body)["message"]
    status, headers, body = post(gateway.url, "/v1/chat/completions", None, bearer(key), method="GET")
    assert status == 405 and headers["allow"] == "POST"
    assert "use POST" in _openai_error(body)["message"]
