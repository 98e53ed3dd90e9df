"""Users, teams, organizations, projects, models and spend reports through the management API."""
from __future__ import annotations

import datetime as dt
import io
import uuid
from decimal import Decimal

from django.core.management import call_command
from django.utils import timezone

from accounts.keys import secret_decrypt
from accounts.models import AuditEntry, ProjectCredential, TeamMembership, User
from billing.models import DailySpend, SpendLog
from gateway.models import ModelDeployment
from tests.accounts.api.conftest import error_of


def test_user_new_creates_the_user_and_a_key_and_joins_teams(admin_api):
    team = admin_api.post("/team/new", {"team_alias": "research"}).json()
    body = admin_api.post("/user/new", {"user_id": "ada", "user_email": "ada@example.com",
                                        "user_role": "internal_user", "teams": [team["team_id"]],
                                        "max_budget": 20}).json()
    assert body["user_id"] == "ada" and body["key"].startswith("sk-") and body["teams"] == [team["team_id"]]
    info = admin_api.get("/user/info", user_id="ada").json()
    assert info["user_info"]["max_budget"] == 20 and len(info["keys"]) == 1
    assert [t["team_alias"] for t in info["teams"]] == ["research"]
    duplicate = admin_api.post("/user/new", {"user_id": "ada"})
    assert duplicate.status_code == 400 and error_of(duplicate)["param"] == "user_id"


def test_user_new_rejects_an_unknown_role(admin_api):
    response = admin_api.post("/user/new", {"user_id": "x", "user_role": "emperor"})
    assert response.status_code == 400 and "emperor" in error_of(response)["message"]


def test_team_lifecycle(admin_api):
    team = admin_api.post("/team/new", {"team_alias": "ml", "models": ["gpt-4o"], "max_budget": 10,
                                        "budget_duration": "30d", "rpm_limit": 100,
                                        "members_with_roles": [{"role": "admin", "user_id": "lead"}]}).json()
    assert team["budget_reset_at"] is not None
    assert TeamMembership.objects.get(user__username="lead").role == "admin"
    updated = admin_api.post("/team/update", {"team_id": team["team_id"], "max_budget": 12, "blocked": True}).json()
    assert updated["max_budget"] == 12 and updated["blocked"] is True and updated["rpm_limit"] == 100
    key = admin_api.post("/key/generate", {"team_id": team["team_id"]}).json()
    info = admin_api.get("/team/info", team_id=team["team_id"]).json()
    assert [k["token"] for k in info["keys"]] == [key["token"]]
    assert admin_api.post("/team/delete", {"team_ids": [team["team_id"]]}).status_code == 200
    assert admin_api.get("/team/info", team_id=team["team_id"]).status_code == 404
    assert admin_api.get("/key/info", key=key["key"]).status_code == 404


def test_an_unknown_team_id_is_a_404_naming_it(admin_api):
    response = admin_api.get("/team/info", team_id="abc")
    assert response.status_code == 404 and error_of(response)["param"] == "team_id"


def test_organization_and_members(admin_api):
    org = admin_api.post("/organization/new", {"organization_alias": "acme", "max_budget": 1000}).json()
    admin_api.post("/user/new", {"user_id": "boss"})
    added = admin_api.post("/organization/member_add", {"organization_id": org["organization_id"],
                                                        "member": {"user_id": "boss", "role": "org_admin"}})
    assert added.json()["members"] == [{"user_id": "boss", "role": "org_admin"}]
    team = admin_api.post("/team/new", {"team_alias": "t", "organization_id": org["organization_id"]}).json()
    info = admin_api.get("/organization/info", organization_id=org["organization_id"]).json()
    assert info["teams"] == [{"team_id": team["team_id"], "team_alias": "t"}]
    assert [o["organization_alias"] for o in admin_api.get("/organization/list").json()] == ["acme"]


def test_project_credentials_are_write_only(admin_api):
    team = admin_api.post("/team/new", {"team_alias": "apps"}).json()
    secret = "sk-proj-provider-secret-9876"
    project = admin_api.post("/project/new", {"project_alias": "chatbot", "team_id": team["team_id"],
                                              "credentials": {"openai": secret}, "max_budget": 3})
    assert project.status_code == 200
    body = project.json()
    assert body["credentials"] == {"openai": "…9876"} and secret not in project.content.decode()
    stored = ProjectCredential.objects.get()
    assert secret not in stored.encrypted_api_key and secret_decrypt(stored.encrypted_api_key) == secret
    replaced = admin_api.post("/project/update", {"project_id": body["project_id"],
                                                  "credentials": {"openai": "sk-new-provider-key-1111"}})
    assert replaced.json()["credentials"] == {"openai": "…1111"}
    removed = admin_api.post("/project/update", {"project_id": body["project_id"], "credentials": {"openai": None}})
    assert removed.json()["credentials"] == {}
    for response in (admin_api.get("/project/info", project_id=body["project_id"]), admin_api.get("/project/list")):
        assert secret not in response.content.decode()
    dump = io.StringIO()
    call_command("dumpdata", "accounts.auditentry", stdout=dump)
    assert secret not in dump.getvalue()
    assert admin_api.post("/project/delete", {"project_ids": [body["project_id"]]}).status_code == 200


def test_project_needs_an_owner_and_a_known_provider(admin_api):
    response = admin_api.post("/project/new", {"project_alias": "orphan"})
    assert response.status_code == 400 and error_of(response)["param"] == "team_id"
    team = admin_api.post("/team/new", {"team_alias": "x"}).json()
    response = admin_api.post("/project/new", {"project_alias": "p", "team_id": team["team_id"],
                                               "credentials": {"nope": "sk-whatever-123"}})
    assert response.status_code == 400 and "nope" in error_of(response)["message"]


def test_model_new_encrypts_the_provider_key_and_never_returns_it(admin_api, settings, monkeypatch):
    monkeypatch.setitem(settings.LLMUR.config.general_settings, "allowed_env_references", ["OPENAI_API_KEY"])
    secret = "sk-upstream-provider-secret-42"
    created = admin_api.post("/model/new", {"model_name": "house-gpt", "litellm_params": {
        "model": "openai/gpt-4o", "api_base": "http://127.0.0.1:9/v1", "api_key": secret},
        "model_info": {"id": "house-1"}})
    assert created.status_code == 200 and created.json()["model_id"] == "house-1"
    row = ModelDeployment.objects.get(deployment_id="house-1")
    assert row.source == "db" and secret_decrypt(row.litellm_params["api_key"]["encrypted"]) == secret
    info = admin_api.get("/model/info", litellm_model_id="house-1")
    assert info.json()["data"][0]["litellm_params"]["api_key"] == "(encrypted)"
    assert secret not in info.content.decode() and secret not in created.content.decode()
    env_ref = admin_api.post("/model/new", {"model_name": "env", "litellm_params": {
        "model": "openai/gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"}}).json()
    assert env_ref["litellm_params"]["api_key"] == "os.environ/OPENAI_API_KEY"
    assert admin_api.post("/model/delete", {"id": "house-1"}).status_code == 200
    assert not ModelDeployment.objects.filter(deployment_id="house-1").exists()
    assert admin_api.post("/model/delete", {"id": "house-1"}).status_code == 404
    assert AuditEntry.objects.filter(entity_type="modeldeployment").count() == 3


def test_model_new_validates_params(admin_api):
    response = admin_api.post("/model/new", {"model_name": "bad", "litellm_params": {"api_base": "x"}})
    assert response.status_code == 400 and "litellm_params.model" in error_of(response)["message"]
    response = admin_api.post("/model/new", {"model_name": "bad", "litellm_params": {"model": "x", "timeout": -1}})
    assert response.status_code == 400 and error_of(response)["param"] == "litellm_params.timeout"


def test_config_deployments_cannot_be_deleted_through_the_api(admin_api):
    ModelDeployment.objects.create(deployment_id="cfg-1", model_name="m", provider="openai",
                                   litellm_params={"model": "gpt-4o"}, source="config")
    response = admin_api.post("/model/delete", {"id": "cfg-1"})
    assert response.status_code == 400 and "config file" in error_of(response)["message"]


def _seed_spend(key, team, user, model: str, cost: str, day: dt.date) -> None:
    started = timezone.make_aware(dt.datetime.combine(day, dt.time(12)))
    SpendLog.objects.create(request_id=uuid.uuid4().hex, key=key, team=team, user=user, model=model,
                            key_display=key.display, prompt_tokens=10, completion_tokens=5, total_tokens=15,
                            cost=Decimal(cost), started_at=started, ended_at=started)
    DailySpend.objects.create(day=day, key=key, team=team, user=user, model=model, prompt_tokens=10,
                              completion_tokens=5, cost=Decimal(cost), requests=1)


def test_spend_logs_and_report_filter_and_group(world, admin_api):
    today = timezone.now().date()
    yesterday = today - dt.timedelta(days=1)
    member = User.objects.get(username="member")
    _seed_spend(world.team_a_key, world.team_a, member, "gpt-4o", "0.25", yesterday)
    _seed_spend(world.team_a_key, world.team_a, member, "gpt-4o-mini", "0.05", today)
    _seed_spend(world.team_b_key, world.team_b, None, "gpt-4o", "1.00", today)

    logs = admin_api.get("/spend/logs", api_key=world.team_a_plain).json()
    assert sorted(r["spend"] for r in logs) == [0.05, 0.25]
    assert {r["api_key"] for r in logs} == {world.team_a_key.key_hash}
    assert len(admin_api.get("/spend/logs", model="gpt-4o").json()) == 2
    assert len(admin_api.get("/spend/logs", start_date=today.isoformat()).json()) == 2
    assert len(admin_api.get("/spend/logs", team_id=world.team_b.public_id).json()) == 1
    assert len(admin_api.get("/spend/logs", user_id="member").json()) == 2

    by_team = admin_api.get("/global/spend/report", start_date=yesterday.isoformat(), end_date=today.isoformat(),
                            group_by="team,organization").json()
    assert {(r["team_id"], r["spend"]) for r in by_team} == {(world.team_a.public_id, 0.3), (world.team_b.public_id, 1.0)}
    by_key = admin_api.get("/global/spend/report", group_by="key").json()
    assert {r["api_key"]: r["api_requests"] for r in by_key} == {world.team_a_key.key_hash: 2,
                                                                 world.team_b_key.key_hash: 1}
    by_day_model = admin_api.get("/global/spend/report", group_by="day,model").json()
    assert [(r["day"], r["model"]) for r in by_day_model] == [
        (yesterday.isoformat(), "gpt-4o"), (today.isoformat(), "gpt-4o"), (today.isoformat(), "gpt-4o-mini")]
    bad = admin_api.get("/global/spend/report", group_by="planet")
    assert bad.status_code == 400 and error_of(bad)["param"] == "group_by"
    bad_date = admin_api.get("/spend/logs", start_date="yesterday")
    assert bad_date.status_code == 400 and error_of(bad_date)["param"] == "start_date"


def test_spend_is_scoped_to_what_the_caller_may_see(world):
    from tests.accounts.api.conftest import Api

    today = timezone.now().date()
    _seed_spend(world.team_a_key, world.team_a, None, "gpt-4o", "0.10", today)
    _seed_spend(world.team_b_key, world.team_b, None, "gpt-4o", "0.90", today)
    team_admin = Api(world.keys["teamadmin"])
    assert [r["spend"] for r in team_admin.get("/spend/logs").json()] == [0.1]
    assert team_admin.get("/spend/logs", api_key=world.team_b_plain).status_code == 404
    report = team_admin.get("/global/spend/report", group_by="team").json()
    assert [[t["team_id"] for t in day["teams"]] for day in report] == [[world.team_a.public_id]]
    outsider = Api(world.keys["outsider"]).get("/global/spend/report", group_by="team").json()
    assert [t["team_id"] for t in outsider[0]["teams"]] == [world.team_b.public_id]


def test_every_management_route_declares_the_json_it_answers(db):
    """response= schemas on the management API: /openapi.json documents each answer's fields."""
    from django.test import Client

    from accounts.api import management_auth
    from llmur.api import api

    spec = Client().get("/openapi.json").json()
    management = {"/" + path.lstrip("/") for _, router in api._routers if router.auth is management_auth
                  for path in router.path_operations}
    undocumented = []
    for path in sorted(management - {"/key/{key}/regenerate"}):  # hidden from the schema (include_in_schema)
        for method, operation in spec["paths"][path].items():
            schema = operation["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema")
            if not schema:
                undocumented.append(f"{method.upper()} {path}")
    assert not undocumented
    key = spec["components"]["schemas"]["KeyOut"]["properties"]
    assert {"token", "key_alias", "max_budget", "models", "team_id", "blocked"} <= set(key)
