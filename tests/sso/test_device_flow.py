"""Agent sign-in (RFC 8628): every error the token endpoint answers, and the happy path to a key the approver owns."""
from __future__ import annotations

import re

import pytest

from accounts.device_codes import USER_CODE_ALPHABET
from accounts.keys import key_digest
from accounts.models import AuditEntry, DeviceAuthorization, VirtualKey
from tests.sso.conftest import Agent, browser_of, oauth_error, sign_in_of, wait_out_interval

pytestmark = pytest.mark.django_db


def approve(browser, user_code: str, scope: str = "personal"):
    return browser.post("/sso/device", {"user_code": user_code, "decision": "approve", "scope": scope})


def test_everything_answers_404_while_the_flow_is_off(db, world, people):
    agent = Agent()
    assert agent.ask().status_code == 404
    assert agent.poll("anything").status_code == 404
    assert agent.ask().json()["error"]["message"].startswith("Agent sign-in is off")
    assert browser_of(people["member"]).get("/sso/device").status_code == 404


def test_codes_answer_as_rfc_8628_section_3_2(agent, flow):
    response = agent.ask(scope="gpt-4o-mini")
    body = response.json()
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert set(body) == {"device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in",
                         "interval"}
    assert re.fullmatch(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}", body["user_code"])
    assert body["verification_uri"] == "http://testserver/sso/device"
    assert body["verification_uri_complete"] == f"http://testserver/sso/device?user_code={body['user_code']}"
    assert (body["expires_in"], body["interval"]) == (flow.code_lifetime_seconds, flow.interval_seconds)
    assert len(body["device_code"]) >= 43
    row = sign_in_of(body["device_code"])
    assert (row.client_id, row.scope, row.user_agent) == ("claude-code on laptop-7", "gpt-4o-mini", "agent-cli/1.0")
    stored = " ".join(str(v) for v in DeviceAuthorization.objects.values().get(pk=row.pk).values())
    assert body["device_code"] not in stored and body["user_code"] not in stored
    assert body["user_code"].replace("-", "") not in stored


def test_the_configured_verification_uri_is_given(agent, flow):
    flow.verification_uri = "https://llm.example.com/sso/device"
    assert agent.codes()["verification_uri"] == "https://llm.example.com/sso/device"


@pytest.mark.parametrize("fields, error", [
    ({"client_id": ""}, "invalid_request"),
    ({"client_id": "x" * 101}, "invalid_request"),
    ({"client_id": "agent\nwith newline"}, "invalid_request"),
    ({"client_id": "agent", "scope": "<script>"}, "invalid_scope"),
])
def test_a_bad_code_request_names_the_field(flow, fields, error):
    response = Agent().http.post("/sso/device/code", fields)
    assert response.status_code == 400
    assert oauth_error(response) == error


def test_code_requests_take_json_too(flow):
    response = Agent().http.post("/sso/device/code", {"client_id": "json-agent"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["user_code"]


def test_token_errors_for_a_wrong_grant_type_a_missing_and_an_unknown_device_code(agent):
    codes = agent.codes()
    assert oauth_error(agent.poll(codes["device_code"], grant_type="authorization_code")) == "unsupported_grant_type"
    assert oauth_error(agent.poll("")) == "invalid_request"
    unknown = agent.poll("not-a-device-code")
    assert unknown.status_code == 400 and oauth_error(unknown) == "invalid_grant"
    other_client = agent.poll(codes["device_code"], client_id="someone-else")
    assert oauth_error(other_client) == "invalid_grant"


def test_polling_answers_pending_then_slow_down_faster_than_the_interval(agent, flow):
    device_code = agent.codes()["device_code"]
    first = agent.poll(device_code)
    assert first.status_code == 400 and oauth_error(first) == "authorization_pending"
    too_soon = agent.poll(device_code)
    assert oauth_error(too_soon) == "slow_down"
    # RFC 8628 3.5: the interval grows by five seconds with every slow_down, and the agent must keep it.
    assert too_soon.json()["interval"] == flow.interval_seconds + 5
    assert sign_in_of(device_code).interval == flow.interval_seconds + 5
    wait_out_interval(device_code)
    assert oauth_error(agent.poll(device_code)) == "authorization_pending"


def test_expired_codes_answer_expired_token(agent):
    device_code = agent.codes()["device_code"]
    sign_in = sign_in_of(device_code)
    DeviceAuthorization.objects.filter(pk=sign_in.pk).update(expires_at=sign_in.created_at)
    assert oauth_error(agent.poll(device_code)) == "expired_token"


def test_an_expired_code_cannot_be_approved(agent, world, people):
    codes = agent.codes()
    sign_in = sign_in_of(codes["device_code"])
    DeviceAuthorization.objects.filter(pk=sign_in.pk).update(expires_at=sign_in.created_at)
    response = approve(browser_of(people["member"]), codes["user_code"])
    assert response.status_code == 400 and b"No sign-in is waiting under this code" in response.content
    assert not VirtualKey.objects.filter(metadata__issued_by="device_flow").exists()


def test_a_denied_sign_in_answers_access_denied(agent, world, people):
    codes = agent.codes()
    page = browser_of(people["member"]).post("/sso/device", {"user_code": codes["user_code"],
                                                                   "decision": "deny"})
    assert page.status_code == 200 and b'id="device-denied"' in page.content
    response = agent.poll(codes["device_code"])
    assert oauth_error(response) == "access_denied"
    assert sign_in_of(codes["device_code"]).decided_by == people["member"]


def test_happy_path_issues_a_key_owned_by_the_approver_in_the_chosen_scope(agent, world, people):
    member = people["member"]
    codes = agent.codes(scope="gpt-4o-mini")
    assert oauth_error(agent.poll(codes["device_code"])) == "authorization_pending"
    browser = browser_of(member)
    page = browser.get("/sso/device", {"user_code": codes["user_code"].lower().replace("-", " ")})
    assert page.status_code == 200
    assert b"claude-code on laptop-7" in page.content and b"gpt-4o-mini" in page.content
    assert f'value="team:{world.team_a.pk}"'.encode() in page.content
    assert f'value="team:{world.team_b.pk}"'.encode() not in page.content
    done = approve(browser, codes["user_code"], scope=f"team:{world.team_a.pk}")
    assert done.status_code == 200 and b'id="device-approved"' in done.content

    wait_out_interval(codes["device_code"])
    response = agent.poll(codes["device_code"])
    assert response.status_code == 200, response.content
    token = response.json()
    assert token["token_type"] == "Bearer" and token["scope"] == "gpt-4o-mini"
    assert 29 * 86400 < token["expires_in"] <= 30 * 86400
    key = VirtualKey.objects.get(key_hash=key_digest(token["access_token"]))
    assert (key.user, key.team, key.organization) == (member, world.team_a, world.org1)
    assert key.allowed_models == ["gpt-4o-mini"]
    assert key.metadata["agent"] == "claude-code on laptop-7"
    assert sign_in_of(codes["device_code"]).status == DeviceAuthorization.Status.ISSUED


def test_the_device_code_cannot_be_replayed_after_the_key_was_issued(agent, world, people):
    codes = agent.codes()
    approve(browser_of(people["member"]), codes["user_code"])
    token = agent.poll(codes["device_code"]).json()["access_token"]
    wait_out_interval(codes["device_code"])
    replay = agent.poll(codes["device_code"])
    assert replay.status_code == 400 and oauth_error(replay) == "invalid_grant"
    # The replay changed nothing: the key issued first is still the key.
    assert VirtualKey.objects.filter(key_hash=key_digest(token)).exists()


def test_the_key_gets_the_operators_life_and_limits(agent, flow, world, people):
    flow.key_duration, flow.max_budget, flow.budget_duration = "12h", 2, "1d"
    flow.rpm_limit, flow.tpm_limit, flow.models = 30, 10_000, ["gpt-4o-mini"]
    codes = agent.codes(scope="gpt-4o gpt-4o-mini")
    approve(browser_of(people["member"]), codes["user_code"], scope=f"team:{world.team_a.pk}")
    token = agent.poll(codes["device_code"]).json()
    key = VirtualKey.objects.get(key_hash=key_digest(token["access_token"]))
    assert (key.max_budget, key.budget_duration, key.rpm_limit, key.tpm_limit) == (2, "1d", 30, 10_000)
    assert key.allowed_models == ["gpt-4o-mini"]
    assert 11 * 3600 < token["expires_in"] <= 12 * 3600


def test_limits_above_the_scopes_are_refused_on_the_page(agent, flow, world, people):
    flow.max_budget = 500   # team A's budget is 50
    codes = agent.codes()
    response = approve(browser_of(people["member"]), codes["user_code"], scope=f"team:{world.team_a.pk}")
    assert response.status_code == 400 and b"max_budget" in response.content
    assert sign_in_of(codes["device_code"]).status == DeviceAuthorization.Status.PENDING


def test_approvals_and_issued_keys_are_in_the_audit_log(agent, world, people):
    codes = agent.codes()
    approve(browser_of(people["member"]), codes["user_code"])
    agent.poll(codes["device_code"])
    sign_in = sign_in_of(codes["device_code"])
    entries = list(AuditEntry.objects.filter(source="sso").order_by("id").values_list("action", "entity_type",
                                                                                       "actor"))
    assert entries == [("create", "virtualkey", "member"), ("approve", "deviceauthorization", "member"),
                       ("issue", "virtualkey", "agent claude-code on laptop-7 (device flow)")]
    assert AuditEntry.objects.get(action="approve").entity_id == str(sign_in.pk)
    assert "key_hash" not in str(AuditEntry.objects.get(action="issue").after).replace("'key_hash': '***'", "")
