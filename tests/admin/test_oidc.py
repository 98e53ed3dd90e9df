"""Single sign-on against a local OpenID Connect provider: groups become roles and team memberships;
tokens for another client or from another issuer, expired ones, wrong nonces and forged signatures
are refused on the login page (issue 16, items 14 and 15)."""
from __future__ import annotations

import time
import urllib.parse

import pytest
import requests

from accounts.models import AuditEntry, TeamMembership, User
from tests.admin.oidc_provider import OidcProvider
from tests.conftest import start_gateway

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def provider():
    idp = OidcProvider().start()
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, provider):
    config = {"oidc": provider.config(
        roles={"llmur-admins": "proxy_admin", "ml-viewers": "internal_user_viewer"},
        teams={"ml": {"team": "ml", "role": "admin"}, "search": "search"},
    )}
    with django_db_blocker.unblock():
        gateway = start_gateway(config)
    yield gateway
    gateway.stop()


@pytest.fixture(autouse=True)
def honest_provider(provider):
    provider.behave()
    yield
    provider.behave()


def sign_in(server, provider, **user) -> requests.Response:
    provider.next_user = user
    session = requests.Session()
    login = session.get(f"{server.url}/admin/login/?next=/admin/")
    assert 'id="oidc-login"' in login.text
    return session.get(f"{server.url}/oidc/authenticate/", params={"next": "/admin/"})


def test_groups_map_to_role_and_teams_and_the_admin_opens(server, provider):
    response = sign_in(server, provider, sub="u-1", email="grace@example.com", preferred_username="grace",
                       groups=["ml", "search"])
    assert response.status_code == 200 and response.url == f"{server.url}/admin/"
    assert 'id="spend-chart"' in response.text and "grace" in response.text
    user = User.objects.get(username="grace")
    assert (user.role, user.is_staff, user.is_superuser) == ("internal_user", True, False)
    memberships = dict(TeamMembership.objects.filter(user=user).values_list("team__name", "role"))
    assert memberships == {"ml": "admin", "search": "user"}
    assert AuditEntry.objects.filter(source="sso", entity_type="user", action="create").count() == 1


def test_next_sign_in_follows_the_providers_groups(server, provider):
    sign_in(server, provider, sub="u-2", email="linus@example.com", preferred_username="linus", groups=["ml"])
    response = sign_in(server, provider, sub="u-2", email="linus@example.com", preferred_username="linus",
                       groups=["llmur-admins", "search"])
    assert response.status_code == 200
    user = User.objects.get(username="linus")
    assert (user.role, user.is_superuser) == ("proxy_admin", True)
    assert dict(TeamMembership.objects.filter(user=user).values_list("team__name", "role")) == {"search": "user"}
    # A proxy admin sees the audit log through the admin.
    assert response.url.endswith("/admin/") and "Audit log" in response.text


def test_unmapped_people_are_refused(server, provider):
    response = sign_in(server, provider, sub="u-3", email="mallory@example.com", preferred_username="mallory",
                       groups=["marketing"])
    assert "/admin/login/" in response.url and 'id="sso-failed"' in response.text
    assert not User.objects.filter(email="mallory@example.com").exists()


# --------------------------------------------------------------------------- refused sign-ins (16.14, 16.15)

REFUSALS = [
    ("issued for another client", {"aud": "someone-else"}, "another client (aud)"),
    ("issued by another issuer", {"iss": "https://evil.example"}, "another issuer (iss)"),
    ("expired", {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "has expired"),
    ("for another sign-in (nonce)", {"nonce": "not-the-one-we-sent"}, "Nonce"),
]


@pytest.mark.parametrize("claims, logged", [(c, log) for _, c, log in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_refused_id_token_lands_on_the_login_page(server, provider, claims, logged):
    provider.id_token_claims = claims
    response = sign_in(server, provider, sub="u-9", email="eve@example.com", preferred_username="eve",
                       groups=["llmur-admins"])
    assert response.status_code == 200 and "/admin/login/" in response.url
    assert 'id="sso-failed"' in response.text
    assert not User.objects.filter(email="eve@example.com").exists()
    assert "single sign-on refused: " in server.output() and logged in server.output()


def test_a_forged_signature_lands_on_the_login_page(server, provider):
    provider.forge_signature = True
    response = sign_in(server, provider, sub="u-10", email="forger@example.com", preferred_username="forger",
                       groups=["llmur-admins"])
    assert response.status_code == 200 and 'id="sso-failed"' in response.text
    assert not User.objects.filter(email="forger@example.com").exists()


def test_a_callback_for_another_browser_lands_on_the_login_page(server, provider):
    """The state in the callback is not one this browser started (a replayed or forged callback)."""
    provider.next_user = {"sub": "u-11", "email": "mallet@example.com", "groups": ["llmur-admins"]}
    session = requests.Session()
    start = session.get(f"{server.url}/oidc/authenticate/", params={"next": "/admin/"}, allow_redirects=False)
    at_provider = session.get(start.headers["Location"], allow_redirects=False)
    callback = urllib.parse.urlsplit(at_provider.headers["Location"])
    query = dict(urllib.parse.parse_qsl(callback.query), state="someone-elses-state")
    response = session.get(f"{server.url}{callback.path}", params=query)
    assert response.status_code == 200 and 'id="sso-failed"' in response.text
    assert not User.objects.filter(email="mallet@example.com").exists()
