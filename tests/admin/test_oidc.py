"""Single sign-on against a local OpenID Connect provider: groups become roles and team memberships."""
from __future__ import annotations

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
