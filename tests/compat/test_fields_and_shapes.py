"""Fields and shapes LiteLLM's clients read: token_id, access groups on /models, readiness, the over-budget
phrase, JSON 404s, /global/spend/report by team and the spend log's metadata."""
from __future__ import annotations

import openai
import pytest
import requests

from billing.models import SpendLog
from tests.compat.conftest import spend_settle


def test_key_generate_answers_token_id(admin):
    key = admin.ok("POST", "/key/generate", {})
    assert key["token_id"] == key["token"] and len(key["token_id"]) == 64


def test_models_lists_only_access_groups_when_asked(admin, as_key):
    key = as_key(admin.ok("POST", "/key/generate", {})["key"])
    assert len(key.ok("GET", "/models")["data"]) > 1
    assert [m["id"] for m in key.ok("GET", "/models", {"only_model_access_groups": "True"})["data"]] == \
        ["beta-models"]
    narrow = as_key(admin.ok("POST", "/key/generate", {"models": ["mock-claude"]})["key"])
    assert narrow.ok("GET", "/models", {"only_model_access_groups": "True"})["data"] == []


def test_v1_models_lists_a_keys_models_not_its_own_aliases(admin, as_key, server):
    """LiteLLM lists a key with models [m] and aliases {alias: m} as one model; the alias still answers."""
    made = admin.ok("POST", "/key/generate", {"models": ["mock-gpt"], "aliases": {"mistral-7b": "mock-gpt"}})
    key = as_key(made["key"])
    assert [m["id"] for m in key.ok("GET", "/v1/models")["data"]] == ["mock-gpt"]
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=made["key"], max_retries=0)
    answer = client.chat.completions.create(model="mistral-7b", messages=[{"role": "user", "content": "hi"}])
    assert answer.model == "mock-gpt"


def test_readiness_carries_the_fields_litellm_clients_read(server):
    body = requests.get(f"{server.url}/health/readiness", timeout=10).json()
    assert body["status"] == "healthy" and body["db"] == "connected" == body["database"]
    assert body["litellm_version"] == body["llmur_version"] and "cache" in body


@pytest.mark.parametrize("path", ["/no/such/route", "/key/nonsense", "/team"])
def test_unknown_paths_outside_v1_answer_json(server, path):
    response = requests.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {server.master_key}"},
                            timeout=10)
    assert response.status_code == 404 and response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["type"] == "not_found_error"


def test_over_budget_the_message_starts_with_litellms_phrase(admin, server):
    key = admin.ok("POST", "/key/generate", {"models": ["mock-gpt"], "max_budget": 0.000001})
    client = openai.OpenAI(api_key=key["key"], base_url=server.url, max_retries=0)
    client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}])
    spend_settle(lambda: SpendLog.objects.filter(key__key_hash=key["token"], booked=True).exists())
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "again"}])
    message = refused.value.body["message"]
    assert message.startswith("Budget has been exceeded! key") and "max_budget" in message


def test_spend_report_by_team_and_log_metadata_speak_public_ids(admin, server):
    org = admin.ok("POST", "/organization/new", {"organization_id": "org-spend"})
    team = admin.ok("POST", "/team/new", {"team_id": "team-spend", "team_alias": "Spenders",
                                          "organization_id": org["organization_id"]})
    key = admin.ok("POST", "/key/generate", {"team_id": team["team_id"]})
    client = openai.OpenAI(api_key=key["key"], base_url=server.url, max_retries=0)
    client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}])
    spend_settle(lambda: SpendLog.objects.filter(key__key_hash=key["token"], booked=True).exists())

    logs = admin.ok("GET", "/spend/logs", {"api_key": key["key"]})
    assert logs[0]["team_id"] == "team-spend" and logs[0]["organization_id"] == "org-spend"
    assert logs[0]["metadata"]["user_api_key_team_id"] == "team-spend"
    assert logs[0]["metadata"]["user_api_key_org_id"] == "org-spend"

    report = admin.ok("GET", "/global/spend/report", {"group_by": "team"})
    teams = [t for day in report for t in day["teams"] if t["team_id"] == "team-spend"]
    assert set(report[0]) == {"group_by_day", "teams"}
    assert teams[0]["team_name"] == "Spenders" and teams[0]["total_spend"] > 0
    assert teams[0]["metadata"][0]["model"] == "mock-gpt"
