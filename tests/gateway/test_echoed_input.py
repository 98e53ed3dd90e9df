"""Client input echoed in /v1 errors is cut to a length fit for a message (audit 16.12, gateway part):
a 2 MB model name was sent back whole in the 404. Every such answer also carries nosniff."""
from __future__ import annotations

import pytest

from tests.factories import make_key
from tests.gateway.helpers import bearer, post

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = "m" * (2 * 1024 * 1024)
HELLO = [{"role": "user", "content": "hi"}]


def _refused(response, status: int) -> str:
    code, headers, body = response
    assert code == status, body
    assert headers["x-content-type-options"] == "nosniff"
    message = body["error"]["message"]
    assert len(message) < 500 and "(2097152 characters)" in message
    return message


@pytest.mark.parametrize("path, body", [
    ("/v1/chat/completions", {"model": HUGE, "messages": HELLO}),
    ("/v1/completions", {"model": HUGE, "prompt": "hi"}),
    ("/v1/embeddings", {"model": HUGE, "input": "hi"}),
    ("/v1/messages", {"model": HUGE, "messages": HELLO, "max_tokens": 5}),
])
def test_a_2mb_unknown_model_name_is_not_echoed_whole(gateway, path, body):
    message = _refused(post(gateway.url, path, body, bearer(gateway.master_key)), 404)
    assert message.startswith("Model 'mmm")


def test_a_2mb_model_name_refused_by_the_allow_list_is_not_echoed_whole(gateway):
    key = make_key(key_alias="echo-allow-list", allowed_models=["mock-gpt"]).plaintext
    _refused(post(gateway.url, "/v1/chat/completions", {"model": HUGE, "messages": HELLO}, bearer(key)), 404)


def test_a_2mb_field_name_around_a_forbidden_field_is_not_echoed_whole(gateway):
    body = {"model": "mock-gpt", "messages": HELLO, "m" * (2 * 1024 * 1024 - 9): {"api_base": "http://x"}}
    message = _refused(post(gateway.url, "/v1/chat/completions", body, bearer(gateway.master_key)), 400)
    assert "cannot be set by clients" in message


def test_a_2mb_model_in_the_health_query_is_not_echoed_whole(gateway):
    status, _, body = post(gateway.url, f"/health?model={'m' * 60000}", None, bearer(gateway.master_key),
                           method="GET")
    assert status == 404 and len(body["error"]["message"]) < 500
