"""POST /login, LiteLLM's admin UI sign-in form (`admin` + a master key), as LiteLLM users' scripts post it."""
from __future__ import annotations

import pytest
import requests
from django.core.cache import cache

from accounts.models import AuditEntry, Role, User
from llmur import login_throttle


@pytest.fixture(autouse=True)
def _fresh_counters():
    cache.clear()
    yield
    cache.clear()


def _login(server, username: str, password: str, session: requests.Session | None = None) -> requests.Response:
    return (session or requests).post(f"{server.url}/login", data={"username": username, "password": password},
                                      timeout=30)


def test_admin_and_the_master_key_sign_in_to_the_admin_as_a_proxy_admin(server, transactional_db):
    session = requests.Session()
    answer = _login(server, "admin", server.master_key, session)
    assert answer.status_code == 200 and answer.url == f"{server.url}/admin/"
    assert [hop.status_code for hop in answer.history] == [302]
    # The session stays signed in: an admin page a signed-out browser is sent away from.
    page = session.get(f"{server.url}/admin/accounts/virtualkey/", allow_redirects=False, timeout=30)
    assert page.status_code == 200
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.role == Role.PROXY_ADMIN
    assert not admin.has_usable_password()
    assert AuditEntry.objects.filter(entity_id=str(admin.pk), action="create").exists()
    # A second sign-in uses the same account.
    assert _login(server, "admin", server.master_key).status_code == 200
    assert User.objects.filter(username="admin").count() == 1


@pytest.mark.parametrize("username, password", [("admin", "sk-not-the-master-key"), ("root", None), ("", None)])
def test_anything_but_admin_and_a_master_key_is_refused_without_echoing_it(server, transactional_db,
                                                                           username, password):
    password = password or server.master_key
    answer = _login(server, username, password)
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "auth_error"
    assert password not in answer.text
    assert not User.objects.filter(username="admin").exists()


def test_a_virtual_key_is_no_password_for_the_admin_form(server, transactional_db):
    made = requests.post(f"{server.url}/key/generate", json={}, timeout=30,
                         headers={"Authorization": f"Bearer {server.master_key}"}).json()
    answer = _login(server, "admin", made["key"])
    assert answer.status_code == 401 and made["key"] not in answer.text
    assert not User.objects.filter(username="admin").exists()


def test_the_master_key_does_not_take_over_a_non_admin_account_named_admin(server, transactional_db):
    """Attacker side: someone who registered the name `admin` is neither promoted nor signed in as."""
    User.objects.create_user("admin", "someone@example.com", "their own password", role=Role.INTERNAL_USER)
    session = requests.Session()
    answer = _login(server, "admin", server.master_key, session)
    assert answer.status_code == 403
    assert "sessionid" not in session.cookies
    person = User.objects.get(username="admin")
    assert not person.is_superuser and not person.is_staff and person.role == Role.INTERNAL_USER


def test_guessing_is_throttled_before_the_key_is_checked(server, transactional_db):
    for _ in range(login_throttle.ACCOUNT_MAX_FAILURES):
        assert _login(server, "admin", "sk-guess").status_code == 401
    refused = _login(server, "admin", server.master_key)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == str(login_throttle.WINDOW_SECONDS)
    assert not User.objects.filter(username="admin").exists()


def test_get_login_sends_a_browser_to_the_admins_sign_in_page(server):
    answer = requests.get(f"{server.url}/login", allow_redirects=False, timeout=30)
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/login/"
