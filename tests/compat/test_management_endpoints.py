"""LiteLLM's remaining management endpoints, called as its users' scripts call them (requests, LiteLLM's methods):
members of teams and organizations, organization delete, /model/update, /v2/model/info, /model_group/info,
/routes and /global/spend/teams, against a real llmur server.
"""
from __future__ import annotations

import uuid

import pytest
import requests
from django.core.management import call_command

from tests.conftest import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, fake_provider):
    config = {"model_list": [{"model_name": "mock-gpt",
                              "litellm_params": {"model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1"},
                              "model_info": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002,
                                             "max_input_tokens": 8000, "mode": "chat"}}],
              "router_settings": {"num_retries": 0}}
    with django_db_blocker.unblock():
        gateway = start_gateway(config)
    yield gateway
    gateway.stop()


class Admin:
    def __init__(self, server):
        self.url, self.headers = server.url, {"Authorization": f"Bearer {server.master_key}"}

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url + path, headers=self.headers, timeout=30, **kwargs)


def test_team_member_update_changes_the_role_and_refuses_per_member_budgets(server):
    admin = Admin(server)
    team = admin("POST", "/team/new", json={"team_alias": f"t-{uuid.uuid4()}"}).json()
    admin("POST", "/user/new", json={"user_id": "tm-user"})
    admin("POST", "/team/member_add", json={"team_id": team["team_id"], "member": {"user_id": "tm-user"}})
    updated = admin("POST", "/team/member_update", json={"team_id": team["team_id"], "user_id": "tm-user",
                                                         "role": "admin"})
    assert updated.status_code == 200 and updated.json()["role"] == "admin"
    members = admin("GET", "/team/info", params={"team_id": team["team_id"]}).json()["team_memberships"]
    assert {m["user_id"]: m["role"] for m in members}["tm-user"] == "admin"
    budget = admin("POST", "/team/member_update", json={"team_id": team["team_id"], "user_id": "tm-user",
                                                        "max_budget_in_team": 1})
    assert budget.status_code == 200 and budget.json()["max_budget_in_team"] == 1
    negative = admin("POST", "/team/member_update", json={"team_id": team["team_id"], "user_id": "tm-user",
                                                          "max_budget_in_team": -1})
    assert negative.status_code in (400, 422) and "max_budget_in_team" in negative.text


def test_organization_member_flow_and_delete_with_litellms_methods(server):
    admin = Admin(server)
    org = admin("POST", "/organization/new", json={"organization_alias": f"o-{uuid.uuid4()}"}).json()
    org_id = org["organization_id"]
    admin("POST", "/organization/member_add", json={"organization_id": org_id, "member": {"user_id": "om-user"}})
    patched = admin("PATCH", "/organization/member_update", json={"organization_id": org_id, "user_id": "om-user",
                                                                  "role": "org_admin"})
    assert patched.status_code == 200 and patched.json()["user_role"] == "org_admin"
    removed = admin("DELETE", "/organization/member_delete", json={"organization_id": org_id, "user_id": "om-user"})
    assert removed.status_code == 200
    assert admin("GET", "/organization/info", params={"organization_id": org_id}).json()["members"] == []
    deleted = admin("DELETE", "/organization/delete", json={"organization_ids": [org_id]})
    assert deleted.status_code == 200 and deleted.json()[0]["organization_id"] == org_id
    assert admin("GET", "/organization/info", params={"organization_id": org_id}).status_code == 404


def test_model_update_v2_model_info_and_model_group_info(server, fake_provider):
    admin = Admin(server)
    model_id = str(uuid.uuid4())
    admin("POST", "/model/new", json={"model_name": f"added-{model_id}", "model_info": {"id": model_id},
                                      "litellm_params": {"model": "openai/mock-gpt",
                                                         "api_base": f"{fake_provider.url}/v1"}})
    updated = admin("POST", "/model/update", json={"model_name": f"renamed-{model_id}", "model_info": {"id": model_id},
                                                   "litellm_params": {"model": "openai/mock-gpt",
                                                                      "api_base": f"{fake_provider.url}/v1"}})
    assert updated.status_code == 200 and updated.json()["model_name"] == f"renamed-{model_id}"
    v2 = admin("GET", "/v2/model/info", params={"model": f"renamed-{model_id}"}).json()["data"]
    assert [row["model_info"]["id"] for row in v2] == [model_id]
    assert admin("POST", "/model/update", json={"model_info": {"id": "nope"}}).status_code == 404

    groups = {g["model_group"]: g for g in admin("GET", "/model_group/info").json()["data"]}
    assert groups["mock-gpt"]["providers"] == ["openai"] and groups["mock-gpt"]["max_input_tokens"] == 8000
    assert groups["mock-gpt"]["input_cost_per_token"] == 0.001 and groups["mock-gpt"]["mode"] == "chat"

    key = admin("POST", "/key/generate", json={"models": ["mock-gpt"]}).json()["key"]
    seen = requests.get(f"{server.url}/model_group/info", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    # A key of no user sees the groups it may use, and only those.
    assert seen.status_code == 200
    assert [g["model_group"] for g in seen.json()["data"]] == ["mock-gpt"]


def test_routes_lists_the_api_without_a_key(server):
    answer = requests.get(f"{server.url}/routes", timeout=30)
    assert answer.status_code == 200
    paths = {r["path"]: r["methods"] for r in answer.json()["routes"]}
    assert "POST" in paths["/v1/chat/completions"] and "DELETE" in paths["/organization/delete"]


def test_global_spend_teams_shows_spend_per_team_by_alias(server):
    admin = Admin(server)
    alias = f"spend-team-{uuid.uuid4()}"
    team = admin("POST", "/team/new", json={"team_alias": alias}).json()
    key = admin("POST", "/key/generate", json={"team_id": team["team_id"]}).json()["key"]
    requests.post(f"{server.url}/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, timeout=30,
                  json={"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}).raise_for_status()
    call_command("process_spend", verbosity=0)
    body = admin("GET", "/global/spend/teams").json()
    assert alias in body["teams"]
    assert {row["team_id"] for row in body["total_spend_per_team"]} >= {alias}
    assert any(alias in day for day in body["daily_spend"])
