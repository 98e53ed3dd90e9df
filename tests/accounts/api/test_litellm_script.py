"""Against a real llmur server: a script written for LiteLLM's management API, and /model/new on two workers.

`litellm_script` below is what a LiteLLM user runs today (requests + the openai SDK, LiteLLM's paths
and fields); it must pass unchanged. The test around it plays the Celery worker's part by draining
the spend queue, as `celery worker` does in production every couple of seconds.
"""
from __future__ import annotations

import time

import openai
import pytest
import requests
from django.core.management import call_command

from tests.conftest import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)


def _config(fake_provider) -> dict:
    """mock-gpt priced through model_info, so each call costs something."""
    return {
        "model_list": [{"model_name": "mock-gpt",
                        "litellm_params": {"model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1",
                                           "api_key": "sk-upstream-unused"},
                        "model_info": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}],
        "router_settings": {"num_retries": 0},
    }


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, fake_provider):
    """One worker, as LiteLLM's proxy runs by default: a block takes effect on the very next call."""
    with django_db_blocker.unblock():
        gateway = start_gateway(_config(fake_provider))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def two_workers(django_db_setup, django_db_blocker, fake_provider):
    with django_db_blocker.unblock():
        gateway = start_gateway(_config(fake_provider), workers=2)
    yield gateway
    gateway.stop()


def litellm_script(base_url: str, master_key: str, spend_settled) -> dict:
    """LiteLLM's documented flow, verbatim in spirit: generate, call, read spend, block, see 401."""
    headers = {"Authorization": f"Bearer {master_key}"}
    generated = requests.post(f"{base_url}/key/generate", headers=headers,
                              json={"models": ["mock-gpt"], "max_budget": 10, "metadata": {"user": "ci"}})
    generated.raise_for_status()
    key = generated.json()["key"]

    client = openai.OpenAI(api_key=key, base_url=base_url)
    completion = client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content

    spend_settled()
    info = requests.get(f"{base_url}/key/info", params={"key": key}, headers=headers).json()["info"]
    assert info["spend"] > 0 and info["max_budget"] == 10 and info["models"] == ["mock-gpt"]

    requests.post(f"{base_url}/key/block", headers=headers, json={"key": key}).raise_for_status()
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "again"}])
    assert refused.value.status_code == 401
    return info


def test_a_litellm_management_script_passes_unchanged(server):
    def spend_settled() -> None:
        # The Celery worker's job: drain the spend stream, book SpendLog rows and entity spend.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            call_command("process_spend", verbosity=0)
            from accounts.models import VirtualKey

            if VirtualKey.objects.filter(spend__gt=0).exists():
                return
            time.sleep(0.2)

    info = litellm_script(server.url, server.master_key, spend_settled)
    # One request: 10-ish prompt tokens at $0.001 plus completion tokens at $0.002.
    assert 0 < info["spend"] < 1


def test_model_new_is_served_by_every_worker_within_seconds(two_workers, fake_provider):
    server = two_workers
    headers = {"Authorization": f"Bearer {server.master_key}"}
    key = requests.post(f"{server.url}/key/generate", headers=headers, json={}).json()["key"]
    body = {"model": "ops-added", "messages": [{"role": "user", "content": "hi"}]}

    def call() -> int:
        # A fresh connection each time, so the kernel spreads the calls over both workers.
        with requests.Session() as session:
            return session.post(f"{server.url}/v1/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {key}", "Connection": "close"}).status_code

    assert call() == 404
    created = requests.post(f"{server.url}/model/new", headers=headers, json={
        "model_name": "ops-added", "litellm_params": {"model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1",
                                                     "api_key": "sk-upstream-db-secret"}})
    assert created.status_code == 200 and "sk-upstream-db-secret" not in created.text

    # Within a few seconds, calls spread over both workers all succeed: 20 in a row on fresh connections.
    deadline, streak = time.monotonic() + 5, 0
    while streak < 20:
        assert time.monotonic() < deadline, "the new model was not served by every worker within 5 s"
        streak = streak + 1 if call() == 200 else 0

    requests.post(f"{server.url}/model/delete", headers=headers,
                  json={"id": created.json()["model_id"]}).raise_for_status()
    deadline, streak = time.monotonic() + 5, 0
    while streak < 20:
        assert time.monotonic() < deadline, "a worker still served the deleted model after 5 s"
        streak = streak + 1 if call() == 404 else 0
    # Book this test's spend events now, so none is left in the queue for another module to find.
    call_command("process_spend", verbosity=0)
