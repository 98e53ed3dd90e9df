"""Key routes as LiteLLM scripts call them: generate, info, update, list, block/unblock, regenerate, delete."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import AuditEntry, VirtualKey
from tests.accounts.api.conftest import Api, error_of


def test_generate_returns_the_plaintext_once_and_stores_only_its_digest(admin_api):
    response = admin_api.post("/key/generate", {"models": ["gpt-4o"], "max_budget": 10, "key_alias": "ci",
                                                "duration": "30d", "metadata": {"owner": "ci"}})
    assert response.status_code == 200
    body = response.json()
    plaintext = body["key"]
    assert plaintext.startswith("sk-") and body["models"] == ["gpt-4o"] and body["max_budget"] == 10
    assert body["key_name"] == f"sk-…{plaintext[-4:]}" and body["expires"]
    info = admin_api.get("/key/info", key=plaintext).json()["info"]
    assert "key" not in info and info["key_alias"] == "ci" and info["spend"] == 0
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert plaintext not in dump.getvalue()
    assert VirtualKey.objects.get().key_hash == body["token"]


def test_key_info_accepts_the_token_as_well_as_the_key(admin_api):
    body = admin_api.post("/key/generate", {}).json()
    assert admin_api.get("/key/info", key=body["token"]).json()["info"]["key_id"] == body["key_id"]


def test_block_then_unblock_then_update(admin_api):
    plaintext = admin_api.post("/key/generate", {"rpm_limit": 10}).json()["key"]
    assert admin_api.post("/key/block", {"key": plaintext}).json()["blocked"] is True
    assert VirtualKey.objects.get().blocked is True
    assert admin_api.post("/key/unblock", {"key": plaintext}).json()["blocked"] is False
    updated = admin_api.post("/key/update", {"key": plaintext, "max_budget": 2.5, "models": ["a", "b"],
                                             "tpm_limit": 1000}).json()
    assert updated["max_budget"] == 2.5 and updated["models"] == ["a", "b"] and updated["tpm_limit"] == 1000
    # Fields not sent are kept.
    assert updated["rpm_limit"] == 10
    assert VirtualKey.objects.get().max_budget == Decimal("2.5")


def test_regenerate_replaces_the_secret_and_keeps_the_rest(admin_api):
    first = admin_api.post("/key/generate", {"key_alias": "rotating", "max_budget": 3}).json()
    second = admin_api.post(f"/key/{first['key']}/regenerate").json()
    assert second["key"] != first["key"] and second["key_alias"] == "rotating" and second["max_budget"] == 3
    assert admin_api.get("/key/info", key=first["key"]).status_code == 404
    assert admin_api.get("/key/info", key=second["key"]).status_code == 200
    third = admin_api.post("/key/regenerate", {"key": second["key"]}).json()
    assert third["key_id"] == first["key_id"]


def test_list_pages_and_filters(admin_api):
    for alias in ("one", "two", "three"):
        admin_api.post("/key/generate", {"key_alias": alias})
    page = admin_api.get("/key/list", size=2).json()
    assert page["total_count"] == 3 and page["total_pages"] == 2 and len(page["keys"]) == 2
    assert all(isinstance(k, str) and len(k) == 64 for k in page["keys"])
    full = admin_api.get("/key/list", key_alias="two", return_full_object="true").json()
    assert [k["key_alias"] for k in full["keys"]] == ["two"]


def test_delete_by_key_and_by_alias(admin_api):
    a = admin_api.post("/key/generate", {"key_alias": "a"}).json()["key"]
    admin_api.post("/key/generate", {"key_alias": "b"})
    response = admin_api.post("/key/delete", {"keys": [a], "key_aliases": ["b"]})
    assert response.status_code == 200 and VirtualKey.objects.count() == 0
    assert AuditEntry.objects.filter(action="delete", entity_type="virtualkey").count() == 2


@pytest.mark.parametrize("body, param", [
    ({"max_budget": "lots"}, "max_budget"),
    ({"max_budget": -1}, "max_budget"),
    ({"rpm_limit": -5}, "rpm_limit"),
    ({"budget_duration": "soon"}, "budget_duration"),
    ({"duration": "forever"}, "duration"),
    ({"models": "gpt-4o"}, "models"),
    ({"metadata": [1, 2]}, "metadata"),
    ({"key": "short"}, "key"),
])
def test_bad_fields_give_a_400_naming_the_field(admin_api, body, param):
    response = admin_api.post("/key/generate", body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["code"] == "400"
    assert VirtualKey.objects.count() == 0


def test_malformed_json_is_a_400_not_a_traceback(admin_api):
    response = admin_api.client.post("/key/generate", data="{not json", content_type="application/json",
                                     HTTP_AUTHORIZATION=f"Bearer {admin_api.key}")
    assert response.status_code == 400
    assert "not valid JSON" in error_of(response)["message"]


def test_missing_and_wrong_keys_are_401_without_echoing_the_key(db, master_key):
    assert error_of(Api(None).post("/key/generate"))["code"] == "401"
    wrong = "sk-not-a-real-key-000000000000"
    response = Api(wrong).post("/key/generate")
    assert response.status_code == 401 and wrong not in response.content.decode()


def test_x_api_key_header_is_accepted(db, master_key):
    response = Api(None).client.post("/key/generate", data="{}", content_type="application/json",
                                     HTTP_X_API_KEY=master_key)
    assert response.status_code == 200


def test_blocked_key_cannot_use_the_management_api(world):
    admin = Api(world.keys["proxy"])
    assert admin.get("/key/list").status_code == 200
    Api(world.keys["proxy"]).post("/key/block", {"key": world.keys["proxy"]})
    assert admin.get("/key/list").status_code == 401


def test_key_budget_must_fit_inside_its_team(world, admin_api):
    response = admin_api.post("/key/generate", {"team_id": world.team_a.public_id, "max_budget": 500})
    assert response.status_code == 400 and error_of(response)["param"] == "max_budget"
    response = admin_api.post("/key/generate", {"team_id": world.team_a.public_id, "models": ["claude-opus"]})
    assert response.status_code == 400 and "claude-opus" in error_of(response)["message"]
    ok = admin_api.post("/key/generate", {"team_id": world.team_a.public_id, "models": ["gpt-4o"], "max_budget": 20})
    assert ok.status_code == 200 and ok.json()["team_id"] == world.team_a.public_id
    # The team's organization is filled in from the team.
    assert ok.json()["organization_id"] == world.org1.public_id


def test_every_write_leaves_an_audit_entry_with_secrets_masked(admin_api):
    plaintext = admin_api.post("/key/generate", {"key_alias": "audited"}).json()["key"]
    admin_api.post("/key/block", {"key": plaintext})
    entries = list(AuditEntry.objects.order_by("id"))
    assert [(e.action, e.actor, e.source) for e in entries] == [("create", "master key", "api"),
                                                                ("block", "master key", "api")]
    assert entries[0].after["key_hash"] == "***"
    assert entries[1].before["blocked"] is False and entries[1].after["blocked"] is True
    dump = io.StringIO()
    call_command("dumpdata", "accounts.auditentry", stdout=dump)
    assert plaintext not in dump.getvalue() and VirtualKey.objects.get().key_hash not in dump.getvalue()


def test_openapi_documents_the_management_routes(admin_api):
    paths = admin_api.get("/openapi.json").json()["paths"]
    for route in ("/key/generate", "/key/info", "/key/block", "/user/new", "/team/member_add", "/organization/new",
                  "/project/new", "/model/new", "/spend/logs", "/global/spend/report"):
        assert route in paths, route
    assert admin_api.get("/docs").status_code == 200
