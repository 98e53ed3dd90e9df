"""Agent sign-in against someone trying to get a key they should not: guessing codes, approving without
rights, replaying a device_code, skipping the sign-in or the CSRF token."""
from __future__ import annotations

import pytest
from django.test import Client

from accounts.device_codes import USER_CODE_ALPHABET, user_code_generate, user_code_normalize
from accounts.models import DeviceAuthorization, User, VirtualKey
from tests.sso.conftest import browser_of, sign_in_of

pytestmark = pytest.mark.django_db


def wrong_code(right: str) -> str:
    """A well-formed code that is not `right`."""
    while True:
        guess = user_code_generate()
        if guess != right:
            return guess


def test_user_codes_have_the_entropy_rfc_8628_section_5_1_asks_for():
    codes = {user_code_normalize(user_code_generate()) for _ in range(2000)}
    assert len(codes) == 2000    # 20^8 codes: a repeat in 2000 draws would be a broken generator
    assert all(len(c) == 8 and set(c) <= set(USER_CODE_ALPHABET) for c in codes)
    assert len(USER_CODE_ALPHABET) ** 8 > 2 ** 34


def test_guessing_codes_is_stopped_after_the_configured_number_of_wrong_ones(agent, flow, people):
    flow.max_user_code_attempts = 3
    codes = agent.codes()
    browser = browser_of(people["member"])
    for _ in range(3):
        assert browser.get("/sso/device", {"user_code": wrong_code(codes["user_code"])}).status_code == 400
    # Past the limit even the right code is refused: the guesser learns nothing more.
    refused = browser.get("/sso/device", {"user_code": codes["user_code"]})
    assert refused.status_code == 429 and refused["Retry-After"] == "900"
    assert b"Too many wrong codes" in refused.content
    # Another person at the same address still gets their own allowance (the address allows three times more).
    assert browser_of(people["teamadmin"]).get("/sso/device", {"user_code": codes["user_code"]}).status_code == 200


def test_right_codes_do_not_count_against_the_limit(agent, flow, people):
    flow.max_user_code_attempts = 2
    browser = browser_of(people["member"])
    for _ in range(4):
        assert browser.get("/sso/device", {"user_code": agent.codes()["user_code"]}).status_code == 200


def test_one_address_guessing_through_many_accounts_is_stopped_too(agent, flow, people):
    flow.max_user_code_attempts = 1
    codes = agent.codes()
    statuses = [browser_of(people[name]).get("/sso/device", {"user_code": wrong_code(codes["user_code"])})
                .status_code for name in ("member", "teamadmin", "orgadmin", "outsider")]
    assert statuses == [400, 400, 400, 429]


def test_someone_who_may_not_create_keys_cannot_approve(agent, people):
    codes = agent.codes()
    browser = browser_of(people["viewer"])
    page = browser.get("/sso/device", {"user_code": codes["user_code"]})
    assert page.status_code == 200 and b'id="device-no-scope"' in page.content and b"device-approve" not in page.content
    forced = browser.post("/sso/device", {"user_code": codes["user_code"], "decision": "approve", "scope": "personal"})
    assert forced.status_code == 403
    assert sign_in_of(codes["device_code"]).status == DeviceAuthorization.Status.PENDING
    assert not VirtualKey.objects.filter(metadata__issued_by="device_flow").exists()


def test_nobody_approves_into_a_team_they_do_not_belong_to(agent, world, people):
    codes = agent.codes()
    response = browser_of(people["member"]).post("/sso/device", {
        "user_code": codes["user_code"], "decision": "approve", "scope": f"team:{world.team_b.pk}"})
    assert response.status_code == 403 and b"You may not create keys there" in response.content
    assert sign_in_of(codes["device_code"]).status == DeviceAuthorization.Status.PENDING


def test_a_decided_sign_in_cannot_be_decided_again(agent, people):
    codes = agent.codes()
    browser = browser_of(people["member"])
    browser.post("/sso/device", {"user_code": codes["user_code"], "decision": "deny"})
    again = browser.post("/sso/device", {"user_code": codes["user_code"], "decision": "approve", "scope": "personal"})
    assert again.status_code == 400
    assert sign_in_of(codes["device_code"]).status == DeviceAuthorization.Status.DENIED


def test_the_page_wants_a_signed_in_admin_user_and_comes_back_after(agent, people, world):
    codes = agent.codes()
    anonymous = Client().get("/sso/device", {"user_code": codes["user_code"]})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/?next=/sso/device%3Fuser_code%3D")
    User.objects.filter(pk=people["member"].pk).update(is_staff=False)
    not_staff = browser_of(people["member"]).get("/sso/device")
    assert not_staff.status_code == 302 and not_staff["Location"].startswith("/admin/login/")


def test_approving_without_the_csrf_token_is_refused(agent, people):
    codes = agent.codes()
    browser = browser_of(people["member"], csrf=True)
    response = browser.post("/sso/device", {"user_code": codes["user_code"], "decision": "approve",
                                            "scope": "personal"})
    assert response.status_code == 403
    assert sign_in_of(codes["device_code"]).status == DeviceAuthorization.Status.PENDING


def test_the_page_may_not_be_framed(agent, people):
    page = browser_of(people["member"]).get("/sso/device", {"user_code": agent.codes()["user_code"]})
    assert page["X-Frame-Options"] == "DENY"


def test_a_device_code_is_good_for_one_key_only_even_when_polled_twice_at_once(agent, people):
    """Two polls of an approved code: select_for_update makes the second find the grant used."""
    codes = agent.codes()
    browser_of(people["member"]).post("/sso/device", {"user_code": codes["user_code"], "decision": "approve",
                                                       "scope": "personal"})
    first, second = agent.poll(codes["device_code"]), agent.poll(codes["device_code"])
    assert first.status_code == 200
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert VirtualKey.objects.filter(metadata__issued_by="device_flow").count() == 1


def test_too_many_code_requests_from_one_address_are_refused(agent, flow):
    flow.max_codes_per_address = 2
    assert [agent.ask().status_code for _ in range(3)] == [200, 200, 429]
    assert agent.ask().json()["error"] == "slow_down"
