"""Agent sign-in where the person signs in through single sign-on: the login page's OpenID Connect button
brings them back to the verification page, and the key is theirs."""
from __future__ import annotations

import html
import re

import pytest
import requests

from accounts.keys import key_digest
from accounts.models import User, VirtualKey
from tests.admin.oidc_provider import OidcProvider
from tests.conftest import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)
GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def provider():
    idp = OidcProvider().start()
    yield idp
    idp.stop()


@pytest.fixture
def server(django_db_setup, provider):
    handle = start_gateway({"oidc": provider.config(teams={"ml": {"team": "ml", "role": "user"}}),
                            "sso": {"device_flow": {"enabled": True}}})
    yield handle
    handle.stop()


def test_a_person_signing_in_with_oidc_approves_an_agent_and_owns_its_key(server, provider):
    codes = requests.post(f"{server.url}/sso/device/code", data={"client_id": "sso-agent"}, timeout=10).json()
    provider.next_user = {"sub": "u-9", "email": "ada@example.com", "preferred_username": "ada", "groups": ["ml"]}
    browser = requests.Session()
    login = browser.get(codes["verification_uri_complete"], timeout=10)
    button = html.unescape(re.search(r'id="oidc-login" href="([^"]+)"', login.text).group(1))
    page = browser.get(f"{server.url}{button}", timeout=10)
    assert page.url == codes["verification_uri_complete"] and "sso-agent" in page.text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    ml_team = re.search(r'<option value="(team:\d+)">Team ml</option>', page.text).group(1)
    done = browser.post(codes["verification_uri"], data={"csrfmiddlewaretoken": csrf, "user_code": codes["user_code"],
                                                         "decision": "approve", "scope": ml_team}, timeout=10)
    assert 'id="device-approved"' in done.text
    token = requests.post(f"{server.url}/sso/device/token", data={"grant_type": GRANT,
                                                                  "device_code": codes["device_code"]},
                          timeout=10).json()
    key = VirtualKey.objects.select_related("team").get(key_hash=key_digest(token["access_token"]))
    assert key.user == User.objects.get(username="ada") and key.team.name == "ml"
