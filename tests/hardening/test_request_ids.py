"""Request ids (issue 16 item 4, issue 17 item 6): spend is keyed on an id llmur generates, never on
the client's x-request-id; the client's value and the upstream answer's id are kept beside it and
/spend/logs?request_id= finds a row by any of the three.

On the code before (e497ac5 … 7efbbe4) the client's x-request-id was SpendLog's unique request id:
30 requests sharing one became one row, the key's recorded spend was one request's, and once the
Redis budget counter was rebuilt from the database the key was served again past its budget.
"""
from __future__ import annotations

import json
import os
import uuid
from decimal import Decimal

import pytest

from tests.conftest import start_gateway
from tests.factories import make_key
from tests.gateway.helpers import bearer, post, sse_lines

pytestmark = pytest.mark.django_db(transaction=True)

IN_PRICE, OUT_PRICE = Decimal("0.000001"), Decimal("0.000002")
BODY = {"model": "priced", "messages": [{"role": "user", "content": "lorem " * 64}], "max_tokens": 16}


@pytest.fixture(scope="module")
def server(django_db_setup, fake_provider):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL")
    v1 = f"{fake_provider.url}/v1"
    prices = {"input_cost_per_token": str(IN_PRICE), "output_cost_per_token": str(OUT_PRICE)}
    gateway = start_gateway({"model_list": [
        {"model_name": "priced", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1}, "model_info": prices},
        {"model_name": "claude", "litellm_params": {"model": "anthropic/mock-claude", "api_base": fake_provider.url},
         "model_info": prices},
    ], "router_settings": {"num_retries": 0}})
    yield gateway
    gateway.stop()




def _drain(redis_client) -> None:
    from billing.queue import drain

    drain(client=redis_client, max_seconds=60)


def test_16_4_thirty_requests_sharing_an_x_request_id_are_thirty_requests_for_spend_and_budget(
        server, redis_client):
    from billing.connections import budget_key
    from billing.models import SpendLog

    # About ten requests' worth: one costs 99 prompt + 16 completion tokens = $0.000131.
    plaintext, key = make_key(key_alias="shared-request-id", max_budget=Decimal("0.0013"))
    shared = f"client-{uuid.uuid4().hex}"
    answered, refused = [], []
    for _ in range(30):
        status, headers, body = post(server.url, "/v1/chat/completions", BODY,
                                     {**bearer(plaintext), "x-request-id": shared})
        assert headers["x-request-id"] == shared          # echoed as clients expect
        (answered if status == 200 else refused).append(headers["x-llmur-request-id"])
        if status != 200:
            assert status == 429 and body["error"]["type"] == "budget_exceeded", body
    assert 5 <= len(answered) < 30 and refused
    assert len(set(answered + refused)) == 30              # llmur's own id, one per request

    _drain(redis_client)
    rows = SpendLog.objects.filter(key_id=key.pk)
    assert sorted(rows.values_list("request_id", flat=True)) == sorted(answered)
    assert set(rows.values_list("client_request_id", flat=True)) == {shared}
    key.refresh_from_db()
    total = sum((row.cost for row in rows), Decimal(0))
    assert key.spend == total and total > 0
    # The budget counter rebuilt from the database still refuses: the spend of every answer is there.
    redis_client.delete(budget_key("key", key.pk))
    status, _, body = post(server.url, "/v1/chat/completions", BODY, {**bearer(plaintext), "x-request-id": shared})
    assert status == 429 and body["error"]["type"] == "budget_exceeded", body


def test_without_an_x_request_id_both_headers_carry_llmurs_id(server):
    plaintext, _ = make_key(key_alias="no-client-id")
    status, headers, _ = post(server.url, "/v1/chat/completions", BODY, bearer(plaintext))
    assert status == 200 and headers["x-request-id"] == headers["x-llmur-request-id"]
    assert len(headers["x-llmur-request-id"]) == 32


def _spend_logs(server, request_id: str) -> list[dict]:
    status, _, body = post(server.url, f"/spend/logs?request_id={request_id}", None,
                           bearer(server.master_key), method="GET")
    assert status == 200, body
    return body


def _ids_seen(lines: list[str]) -> set[str]:
    """Answer ids in an SSE stream: OpenAI chunks carry "id", Anthropic's message_start message.id."""
    seen = set()
    for line in lines:
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            found = event.get("id") or (event.get("message") or {}).get("id")
            if found:
                seen.add(found)
    return seen


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model,path,prefix", [
    ("priced", "/v1/chat/completions", "chatcmpl-"),
    ("claude", "/v1/chat/completions", "chatcmpl-"),   # the id the OpenAI client saw is the one kept
    ("claude", "/v1/messages", "msg_"),
])
def test_17_6_spend_logs_finds_a_row_by_llmurs_id_the_clients_id_or_the_completion_id(
        server, redis_client, model, path, prefix, stream):
    from billing.models import SpendLog

    plaintext, key = make_key(key_alias=f"lookup-{model}-{path}-{stream}")
    client_id = f"trace-{uuid.uuid4().hex}"
    body = {**BODY, "model": model, "stream": stream}
    headers = {**bearer(plaintext), "x-request-id": client_id}
    if stream:
        status, lines = sse_lines(server.url, path, body, headers)
        completion_ids = _ids_seen(lines)
    else:
        status, _, answer = post(server.url, path, body, headers)
        completion_ids = {answer["id"]}
    assert status == 200
    _drain(redis_client)
    row = SpendLog.objects.get(key_id=key.pk)
    assert row.client_request_id == client_id and row.response_id.startswith(prefix)
    assert completion_ids == {row.response_id}
    for wanted in (row.request_id, client_id, row.response_id):
        found = _spend_logs(server, wanted)
        assert [log["request_id"] for log in found] == [row.request_id], wanted
    assert _spend_logs(server, f"nothing-{uuid.uuid4().hex}") == []


def test_an_idempotency_key_still_replays_one_answer_and_one_charge(server, redis_client):
    from billing.models import SpendLog

    plaintext, key = make_key(key_alias="idempotent-with-ids")
    headers = {**bearer(plaintext), "x-request-id": "same-everywhere", "Idempotency-Key": uuid.uuid4().hex}
    first = post(server.url, "/v1/chat/completions", BODY, headers)
    again = post(server.url, "/v1/chat/completions", BODY, headers)
    assert first[0] == again[0] == 200 and first[2] == again[2]
    assert again[1]["idempotent-replayed"] == "true"
    assert again[1]["x-llmur-request-id"] == first[1]["x-llmur-request-id"]
    _drain(redis_client)
    assert list(SpendLog.objects.filter(key_id=key.pk).values_list("request_id", flat=True)) == [
        first[1]["x-llmur-request-id"]]
