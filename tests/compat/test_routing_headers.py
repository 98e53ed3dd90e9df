"""LiteLLM's routing and headers, driven over HTTP the way LiteLLM users' scripts call the proxy:
wildcard model groups, comma batch models, client fallback dicts, the x-litellm-* headers and
x-litellm-timeout, the Azure deployment paths; and the safety rules llmur keeps on top."""
from __future__ import annotations

import time
import uuid
from collections import Counter
from decimal import Decimal

import openai
import pytest

from tests.conftest import start_gateway
from tests.gateway.routing.conftest import Client

pytestmark = pytest.mark.django_db(transaction=True)

HELLO = [{"role": "user", "content": "hello"}]


def _entry(group: str, model: str, upstream, deployment_id: str, model_info: dict | None = None, **params) -> dict:
    return {"model_name": group, "model_info": {"id": deployment_id, **(model_info or {})},
            "litellm_params": {"model": model, "api_base": upstream.url + "/v1", "api_key": "sk-upstream", **params}}


@pytest.fixture(scope="module")
def gateway(django_db_setup, fake_provider):
    up = fake_provider
    server = start_gateway({
        "model_list": [
            _entry("*", "openai/*", up, "wild-all"),
            _entry("groq/*", "openai/groq/*", up, "wild-groq"),
            _entry("priced/*", "openai/*", up, "wild-priced",
                   {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}),
            _entry("m1", "openai/mock-m1", up, "m1"),
            _entry("m2", "openai/mock-m2", up, "m2"),
            _entry("broken", "openai/mock-500", up, "broken"),
            _entry("echo", "openai/mock-echo", up, "echo"),
            _entry("retrying", "openai/mock-retrying", up, "retrying", num_retries=7),
            _entry("short", "openai/mock-slow-3000", up, "short", timeout=1),
        ],
        "router_settings": {"num_retries": 2},
    })
    yield Client(server)
    server.stop()


def _by_model(upstream) -> Counter:
    return Counter(upstream.stats()["by_model"])


def _sdk(gateway: Client, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key or gateway.master_key, max_retries=0)


def test_wildcard_groups_serve_unlisted_models_the_most_specific_first(gateway, fake_provider):
    name = f"gpt-unlisted-{uuid.uuid4().hex[:8]}"
    answer = gateway.chat(name)
    assert answer.status == 200
    assert answer.headers["x-litellm-model-id"] == "wild-all" and answer.headers["x-litellm-model-group"] == name
    assert _by_model(fake_provider)[name] == 1          # the `*` of openai/* filled with the requested name
    groq = gateway.chat("groq/llama-3.1-8b-instant")
    assert groq.status == 200 and groq.headers["x-litellm-model-id"] == "wild-groq"


def test_a_wildcard_allow_list_allows_what_it_matches_and_refuses_the_rest_with_litellms_401(gateway, make_key):
    key = make_key(allowed_models=["m1", "groq/*"])
    client = _sdk(gateway, key)
    assert client.chat.completions.create(model="groq/mixtral", messages=HELLO, max_tokens=2).choices
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="gpt-anything", messages=HELLO, max_tokens=2)
    assert "key not allowed to access model." in refused.value.message


def test_an_unpriced_wildcard_model_is_refused_to_a_key_with_a_budget(gateway, make_key, fake_provider):
    name = f"gpt-unpriced-{uuid.uuid4().hex[:8]}"
    budgeted = make_key(max_budget=10)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _sdk(gateway, budgeted).chat.completions.create(model=name, messages=HELLO, max_tokens=2)
    assert refused.value.body["code"] == "unpriced_model" and "wildcard group '*'" in refused.value.message
    assert _by_model(fake_provider)[name] == 0
    # The operator priced the models under priced/*; and a key without a budget has nothing to overrun.
    assert _sdk(gateway, budgeted).chat.completions.create(model="priced/gpt-x", messages=HELLO, max_tokens=2).choices
    assert _sdk(gateway, make_key()).chat.completions.create(model=name, messages=HELLO, max_tokens=2).choices


def test_comma_separated_models_answer_a_list_in_order(gateway):
    answer = gateway.chat("m1,m2")
    assert answer.status == 200
    answers = answer.json()
    assert isinstance(answers, list) and [a["model"] for a in answers] == ["mock-m1", "mock-m2"]


def test_a_model_key_elsewhere_in_the_body_is_not_a_batch(gateway):
    answer = gateway.chat("m1", response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": {"model": {"enum": ["a,b"]}}},
        "example": {"model": "a,b"}}})
    assert answer.status == 200 and answer.json()["object"] == "chat.completion"


def test_a_batch_is_refused_whole_when_the_key_may_not_use_one_of_its_models(gateway, make_key, fake_provider):
    before = _by_model(fake_provider)
    answer = gateway.chat("m1,m2", key=make_key(allowed_models=["m1"]))
    assert answer.status == 401 and "'m2'" in answer.json()["error"]["message"]
    assert _by_model(fake_provider) == before
    streamed = gateway.chat("m1,m2", stream=True)
    assert streamed.status == 400 and streamed.json()["error"]["param"] == "stream"


def test_a_client_fallback_dict_replaces_the_messages_for_its_model(gateway):
    answer = gateway.chat("broken", fallbacks=[{"model": "echo", "messages": [
        {"role": "user", "content": "This is a custom message"}]}])
    assert answer.status == 200
    assert "This is a custom message" in answer.json()["choices"][0]["message"]["content"]
    assert answer.headers["x-litellm-model-id"] == "echo"


def test_a_fallback_the_key_may_not_use_is_never_tried(gateway, make_key, fake_provider):
    key = make_key(allowed_models=["m1"])
    before = _by_model(fake_provider)
    answer = gateway.chat("m1", key=key, mock_testing_fallbacks=True,
                          fallbacks=[{"model": "echo", "messages": [{"role": "user", "content": "x"}]}])
    assert answer.status == 500
    assert _by_model(fake_provider) == before          # neither m1 (mocked) nor echo (not allowed) was called
    allowed = gateway.chat("m1", key=make_key(allowed_models=["m1", "m2"]), mock_testing_fallbacks=True,
                           fallbacks=["m2"])
    assert allowed.status == 200 and allowed.headers["x-litellm-model-id"] == "m2"


def test_a_fallback_dict_with_an_upstream_address_is_a_400(gateway):
    answer = gateway.chat("m1", fallbacks=[{"model": "m2", "api_base": "http://169.254.169.254"}])
    assert answer.status == 400 and "api_base" in answer.json()["error"]["message"]


def test_retry_headers_count_attempts_against_the_deployments_num_retries(gateway):
    answer = gateway.chat("retrying", mock_testing_rate_limit_error=True)
    assert answer.status == 200
    assert answer.headers["x-litellm-attempted-retries"] == "1"
    assert answer.headers["x-litellm-max-retries"] == "7"
    assert answer.headers["x-llmur-model-deployment"] == answer.headers["x-litellm-model-id"] == "retrying"
    plain = gateway.chat("m1")
    assert (plain.headers["x-litellm-attempted-retries"], plain.headers["x-litellm-max-retries"]) == ("0", "2")


def test_key_spend_header_reports_what_a_budgeted_key_has_spent(gateway, make_key):
    key = make_key(max_budget=10)
    first = gateway.chat("priced/gpt-spend", key=key)
    # What the key had spent before this request (0 for a new key; a Redis kept from an earlier run on
    # a recreated test database may still hold a counter under the same row id).
    assert first.status == 200
    before = float(first.headers["x-litellm-key-spend"])
    deadline = time.monotonic() + 30
    while True:   # the first request's cost is booked after its answer: wait for a later request to see it
        spend = float(gateway.chat("priced/gpt-spend", key=key).headers["x-litellm-key-spend"])
        if spend > before or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert spend > before
    assert "x-litellm-key-spend" not in gateway.chat("m1", key=make_key()).headers   # no budget: not counted


def test_x_litellm_timeout_is_reported_and_a_clients_shorter_one_honoured(gateway):
    started = time.monotonic()
    answer = gateway.chat("short", num_retries=0, headers={"x-litellm-timeout": "0.2"})
    assert answer.status == 504 and time.monotonic() - started < 1.0
    assert answer.headers["x-litellm-timeout"] == "0.2"
    assert gateway.chat("m1", headers={"x-litellm-timeout": "30"}).headers["x-litellm-timeout"] == "30.0"


def test_a_client_cannot_raise_the_deployments_timeout(gateway):
    answer = gateway.chat("short", num_retries=0, headers={"x-litellm-timeout": "100"})
    assert answer.status == 504 and answer.headers["x-litellm-timeout"] == "1.0"


def test_azure_deployment_paths_serve_the_deployment_named(gateway, make_key):
    key = make_key(allowed_models=["m1", "text-embed"])
    azure = openai.AzureOpenAI(azure_endpoint=gateway.url, azure_deployment="m1", api_key=key,
                               api_version="2024-02-15-preview", max_retries=0)
    answer = azure.chat.completions.with_raw_response.create(model="ignored", messages=HELLO, max_tokens=2)
    assert answer.headers["x-litellm-model-id"] == "m1" and answer.parse().choices
    other = openai.AzureOpenAI(azure_endpoint=gateway.url, azure_deployment="m2", api_key=key,
                               api_version="2024-02-15-preview", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        other.chat.completions.create(model="m1", messages=HELLO, max_tokens=2)
    assert "key not allowed to access model." in refused.value.message
    embedded = openai.AzureOpenAI(azure_endpoint=gateway.url, azure_deployment="m1", api_key=gateway.master_key,
                                  api_version="2024-02-15-preview", max_retries=0)
    assert embedded.embeddings.create(model="ignored", input=["hello"]).data


def test_model_group_info_lists_the_priced_models_a_wildcard_group_reaches(gateway, transactional_db):
    """LiteLLM's /model_group/info names the models behind "anthropic/*"-style groups; llmur lists the
    ones it has a price for, under the names a client sends, with that price."""
    from billing.models import ModelPrice

    ModelPrice.objects.update_or_create(model="claude-3-5-haiku-20241022", defaults={
        "provider": "anthropic", "input_cost_per_token": Decimal("0.0000008"), "output_cost_per_token": Decimal("0.000004")})
    answer = gateway.request("GET", "/model_group/info")
    assert answer.status == 200
    groups = {group["model_group"]: group for group in answer.json()["data"]}
    haiku = groups["anthropic/claude-3-5-haiku-20241022"]
    assert haiku["providers"] == ["anthropic"] and haiku["input_cost_per_token"] == 0.0000008
    assert groups["m1"]["deployments"] == 1 and "*" in groups           # the listed groups stay as they are
    one = gateway.request("GET", "/model_group/info?model_group=anthropic/claude-3-5-haiku-20241022").json()["data"]
    assert [group["model_group"] for group in one] == ["anthropic/claude-3-5-haiku-20241022"]
