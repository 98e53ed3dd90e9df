"""End users and shared budgets as a LiteLLM user's script drives them: requests for /customer/* and /budget/*,
the openai SDK's `user=` for the requests they govern, against a real llmur server.

The test plays the Celery worker's part (process_spend) where spend has to reach the database.
"""
from __future__ import annotations

import os
import uuid

import openai
import pytest
import redis
import requests
from django.core.management import call_command

from accounts.models import EndUser
from tests.conftest import start_gateway, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, fake_provider):
    upstream = f"{fake_provider.url}/v1"
    config = {"model_list": [{"model_name": "mock-gpt",
                              "litellm_params": {"model": "openai/mock-gpt", "api_base": upstream},
                              "model_info": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}] + [
        {"model_name": "regional", "model_info": {"id": f"regional-{region}"},
         "litellm_params": {"model": "openai/mock-gpt", "api_base": upstream, "region_name": region}}
        for region in ("eu", "us")],
              "router_settings": {"num_retries": 0}}
    if os.environ.get("REDIS_URL"):
        # Budget counters are keyed by row id: drop those a previous test database left behind.
        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    with django_db_blocker.unblock():
        gateway = start_gateway(config)
    yield gateway
    gateway.stop()


def _admin(server) -> dict:
    return {"Authorization": f"Bearer {server.master_key}"}


def _client(server, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(api_key=key or server.master_key, base_url=server.url, max_retries=0)


def _chat(client: openai.OpenAI, user: str):
    return client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "Hey!"}], user=user)


def test_requests_naming_an_end_user_are_charged_to_it(server):
    customer = f"cust-{uuid.uuid4()}"
    key = requests.post(f"{server.url}/key/generate", headers=_admin(server), json={}).json()["key"]
    _chat(_client(server, key), customer)

    def booked():
        call_command("process_spend", verbosity=0)
        return EndUser.objects.filter(user_id=customer, spend__gt=0).exists()

    wait_until(booked, timeout=30, what="the end user's spend to be booked")
    info = requests.get(f"{server.url}/customer/info", params={"end_user_id": customer}, headers=_admin(server))
    assert info.status_code == 200 and 0 < info.json()["spend"] < 1
    logs = requests.get(f"{server.url}/spend/logs", headers=_admin(server)).json()
    assert customer in {row["end_user"] for row in logs}


def test_a_blocked_end_user_is_refused_whatever_the_key_and_unblocking_lets_it_back(server):
    customer = f"blocked-{uuid.uuid4()}"
    client = _client(server)
    _chat(client, customer)
    assert requests.post(f"{server.url}/customer/block", headers=_admin(server),
                         json={"user_ids": [customer]}).status_code == 200
    with pytest.raises(openai.BadRequestError) as refused:
        _chat(client, customer)
    assert "User blocked from making LLM API Calls" in refused.value.message
    _chat(client, f"someone-else-{uuid.uuid4()}")     # other end users are not affected

    requests.post(f"{server.url}/end_user/unblock", headers=_admin(server), json={"user_ids": [customer]})
    assert _chat(client, customer).choices[0].message.content


def test_an_end_user_on_a_budget_with_a_tpm_limit_is_rate_limited(server):
    """LiteLLM's own scenario: a budget with tpm_limit 2, an end user on it, ten calls: fewer than five pass."""
    admin = _admin(server)
    budget_id = f"free-tier-{uuid.uuid4()}"
    assert requests.post(f"{server.url}/budget/new", headers=admin,
                         json={"budget_id": budget_id, "tpm_limit": 2}).status_code == 200
    customer = str(uuid.uuid4())
    assert requests.post(f"{server.url}/end_user/new", headers=admin,
                         json={"user_id": customer, "budget_id": budget_id}).status_code == 200
    key = requests.post(f"{server.url}/key/generate", headers=admin, json={"models": []}).json()["key"]
    passed, refusals = 0, []
    for _ in range(10):
        try:
            _chat(_client(server, key), customer)
            passed += 1
        except openai.RateLimitError as error:
            refusals.append(error.message)
    assert passed < 5 and refusals
    assert "tpm_limit" in refusals[0] and customer in refusals[0]


def test_an_end_user_over_its_budget_is_refused(server):
    admin = _admin(server)
    customer = f"spender-{uuid.uuid4()}"
    requests.post(f"{server.url}/customer/new", headers=admin, json={"user_id": customer, "max_budget": 0.000001})
    client = _client(server)
    _chat(client, customer)

    def refused():
        call_command("process_spend", verbosity=0)
        try:
            _chat(client, customer)
        except openai.RateLimitError as error:
            return error
        return None

    error = wait_until(refused, timeout=30, what="the end user's budget to refuse")
    assert error.status_code == 429 and "budget" in error.message and customer in error.message


def test_unknown_end_users_are_allowed(server):
    assert _chat(_client(server), f"never-registered-{uuid.uuid4()}").choices[0].message.content


def test_an_end_user_held_to_a_region_is_routed_there_or_to_its_default_model(server):
    admin = _admin(server)
    customer = f"eu-{uuid.uuid4()}"
    created = requests.post(f"{server.url}/customer/new", headers=admin, json={"user_id": customer,
                                                                               "allowed_model_region": "eu"})
    assert created.status_code == 200, created.text
    client = _client(server)
    for _ in range(6):
        answer = client.chat.completions.with_raw_response.create(
            model="regional", messages=[{"role": "user", "content": "Hey!"}], user=customer)
        assert answer.headers["x-llmur-model-deployment"] == "regional-eu"
        assert answer.headers["x-litellm-model-region"] == "eu"
    with pytest.raises(openai.BadRequestError) as refused:
        _chat(client, customer)            # mock-gpt has no deployment in any region
    assert "region 'eu'" in refused.value.message
    updated = requests.post(f"{server.url}/customer/update", headers=admin, json={"user_id": customer,
                                                                                  "default_model": "regional"})
    assert updated.status_code == 200, updated.text
    for _ in range(6):   # the default model has a deployment outside the region too: never that one
        answer = client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=[{"role": "user", "content": "Hey!"}], user=customer)
        assert answer.headers["x-llmur-model-deployment"] == "regional-eu"
