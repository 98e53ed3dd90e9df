"""The hot path's promises: no database query on a warm request; database deployments picked up live."""
from __future__ import annotations

import json
import time

from tests.factories import make_key
from tests.gateway.helpers import bearer, post

HELLO = [{"role": "user", "content": "hi"}]


def _post_in_process(path: str, body: str, key: str):
    """One request through Django's test client on its own event loop, closing the loop's clients after."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from gateway import http

    async def call():
        try:
            return await AsyncClient().post(path, body, content_type="application/json",
                                            headers={"authorization": f"Bearer {key}"})
        finally:
            await http.close_clients()

    return async_to_sync(call)()


def test_warm_request_makes_no_database_query(fake_provider, transactional_db, django_assert_num_queries):
    from gateway.models import ModelDeployment

    ModelDeployment.objects.create(deployment_id="db-hot-path", model_name="hot-path-gpt", provider="openai",
                                   litellm_params={"model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1"})
    key = make_key().plaintext
    body = json.dumps({"model": "hot-path-gpt", "messages": HELLO, "max_tokens": 2})
    first = _post_in_process("/v1/chat/completions", body, key)
    assert first.status_code == 200, first.content
    # Database work runs in this thread (sync_to_async under async_to_sync), so it would be counted here.
    with django_assert_num_queries(0):
        second = _post_in_process("/v1/chat/completions", body, key)
    assert second.status_code == 200
    assert second["x-llmur-model-deployment"] == "db-hot-path"
    assert json.loads(second.content)["choices"][0]["message"]["content"] == "lorem lorem "


def test_database_deployment_is_served_after_it_is_added(gateway, fake_provider, transactional_db):
    from accounts.keys import secret_encrypt
    from gateway.models import ModelDeployment

    key = make_key().plaintext
    payload = {"model": "added-at-runtime", "messages": HELLO, "max_tokens": 1}
    assert post(gateway.url, "/v1/chat/completions", payload, bearer(key))[0] == 404
    ModelDeployment.objects.create(
        deployment_id="db-added", model_name="added-at-runtime", provider="openai",
        litellm_params={"model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1",
                        "api_key": {"encrypted": secret_encrypt("sk-db-deployment-secret")}})
    fake_provider.reset()
    # The write bumps the shared deployments version, which every process re-reads at most every
    # 0.25 s (with the auth version): after a second, the next request is served from the new list.
    time.sleep(1.0)
    assert post(gateway.url, "/v1/chat/completions", payload, bearer(key))[0] == 200
    assert "Bearer sk-db-deployment-secret" in fake_provider.stats()["credentials_seen"]
    ModelDeployment.objects.filter(deployment_id="db-added").update(is_active=False)
    from gateway.registry import deployments_changed

    deployments_changed()
    time.sleep(1.0)
    assert post(gateway.url, "/v1/chat/completions", payload, bearer(key))[0] == 404


def test_openapi_docs_describe_the_api(gateway):
    assert post(gateway.url, "/docs", None, method="GET")[0] == 200
    status, _, schema = post(gateway.url, "/openapi.json", None, method="GET")
    assert status == 200
    assert {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages", "/v1/models"} <= set(
        schema["paths"])
    assert "messages" in json.dumps(schema["paths"]["/v1/chat/completions"]["post"]["requestBody"])


def test_warm_request_naming_an_end_user_makes_no_database_query(fake_provider, make_key, django_assert_num_queries):
    """An end user with limits and one with no row at all: both cached after their first request."""
    from accounts import services
    from accounts.policy import Actor
    from gateway.models import ModelDeployment

    ModelDeployment.objects.create(deployment_id="db-hot-path-eu", model_name="hot-path-eu", provider="openai",
                                   litellm_params={"model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1"})
    services.end_user_create(by=Actor.system("test"), user_id="limited-customer", rpm_limit=1000)
    key = make_key()
    for user in ("limited-customer", "unknown-customer"):
        body = json.dumps({"model": "hot-path-eu", "messages": HELLO, "max_tokens": 2, "user": user})
        assert _post_in_process("/v1/chat/completions", body, key).status_code == 200
        with django_assert_num_queries(0):
            second = _post_in_process("/v1/chat/completions", body, key)
        assert second.status_code == 200
