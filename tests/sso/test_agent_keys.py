"""Operators list and revoke the keys agents received: management API and admin; expired sign-ins are purged."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts import services
from accounts.keys import key_digest
from accounts.models import AuditEntry, DeviceAuthorization, VirtualKey
from tests.sso.conftest import Api, browser_of, error_of, sign_in_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def issued(agent, people) -> dict:
    """An agent signed in by the member, key collected: the codes, the sign-in and the key's plaintext."""
    codes = agent.codes()
    browser_of(people["member"]).post("/sso/device", {"user_code": codes["user_code"], "decision": "approve",
                                                       "scope": "personal"})
    token = agent.poll(codes["device_code"]).json()["access_token"]
    return {"sign_in": sign_in_of(codes["device_code"]), "token": token}


def test_a_proxy_admin_lists_agent_keys_over_the_management_api(admin_api, issued):
    rows = admin_api.get("/sso/agent_keys").json()
    assert [(r["id"], r["agent"], r["status"], r["key_blocked"]) for r in rows] == [
        (issued["sign_in"].pk, "claude-code on laptop-7", "issued", False)]
    assert rows[0]["user_id"] == "member" and rows[0]["team_id"] is None
    assert rows[0]["token"] == key_digest(issued["token"])     # the key's id for /key/info, /key/block ...
    assert issued["token"] not in str(rows)
    assert admin_api.get("/sso/agent_keys", status="pending").json() == []
    assert error_of(admin_api.get("/sso/agent_keys", status="nonsense"))["param"] == "status"


def test_others_see_only_agent_keys_they_may_see(world, issued):
    assert len(Api(world.keys["member"]).get("/sso/agent_keys").json()) == 1
    assert Api(world.keys["outsider"]).get("/sso/agent_keys").json() == []
    hidden = Api(world.keys["outsider"]).post("/sso/agent_keys/revoke", {"id": issued["sign_in"].pk})
    assert hidden.status_code == 404


def test_revoking_blocks_the_key_at_once_and_is_audited(admin_api, issued):
    response = admin_api.post("/sso/agent_keys/revoke", {"id": issued["sign_in"].pk})
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    key = VirtualKey.objects.get(key_hash=key_digest(issued["token"]))
    assert key.blocked
    assert list(AuditEntry.objects.filter(action__in=["block", "revoke"]).values_list("action", "actor")) == [
        ("revoke", "master key"), ("block", "master key")]
    # Again: nothing more happens, and nothing fails.
    assert admin_api.post("/sso/agent_keys/revoke", {"id": issued["sign_in"].pk}).status_code == 200


def test_the_owner_may_revoke_their_agents_key(world, issued):
    response = Api(world.keys["member"]).post("/sso/agent_keys/revoke", {"id": issued["sign_in"].pk})
    assert response.status_code == 200 and response.json()["key_blocked"] is True


def test_the_admin_lists_agent_sign_ins_and_revokes_them(people, issued):
    browser = browser_of(people["proxy"])
    page = browser.get("/admin/accounts/deviceauthorization/")
    assert page.status_code == 200 and b"claude-code on laptop-7" in page.content
    assert browser_of(people["outsider"]).get("/admin/accounts/deviceauthorization/").content.count(
        b"claude-code on laptop-7") == 0
    done = browser.post("/admin/accounts/deviceauthorization/", {
        "action": "revoke_selected", "_selected_action": [issued["sign_in"].pk]}, follow=True)
    assert b"Revoked 1 agent sign-in" in done.content
    assert VirtualKey.objects.get(key_hash=key_digest(issued["token"])).blocked


def test_purge_deletes_sign_ins_expired_a_day_ago_and_keys_nobody_collected(agent, people):
    waiting = agent.codes()
    approved = agent.codes()
    browser_of(people["member"]).post("/sso/device", {"user_code": approved["user_code"], "decision": "approve",
                                                       "scope": "personal"})
    key_id = sign_in_of(approved["device_code"]).key_id
    fresh = agent.codes()
    DeviceAuthorization.objects.exclude(pk=sign_in_of(fresh["device_code"]).pk).update(
        expires_at=timezone.now() - dt.timedelta(days=2))
    assert services.device_authorization_purge() == 2
    assert list(DeviceAuthorization.objects.values_list("pk", flat=True)) == [sign_in_of(fresh["device_code"]).pk]
    assert not VirtualKey.objects.filter(pk=key_id).exists()
    assert not DeviceAuthorization.objects.filter(device_code_hash__in=[waiting["device_code"]]).exists()
