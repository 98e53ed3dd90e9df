"""Fixtures for agent sign-in: the device flow switched on, codes requested and polled as an agent does."""
from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.db.models import F
from django.test import Client

from accounts.device_codes import GRANT_TYPE, device_code_digest
from accounts.models import DeviceAuthorization, User
from llmur.config import DeviceFlowConfiguration
from tests.accounts.api.conftest import Api, admin_api, error_of, master_key, world  # noqa: F401 - fixtures and helpers shared


@pytest.fixture
def flow(monkeypatch, settings_cache_cleared) -> DeviceFlowConfiguration:
    """sso.device_flow on, with the defaults an operator gets by writing `enabled: true`."""
    config = DeviceFlowConfiguration(enabled=True)
    monkeypatch.setattr(settings.LLMUR.config.sso, "device_flow", config)
    return config


@pytest.fixture
def settings_cache_cleared():
    """The throttle counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def people(world) -> dict:  # noqa: F811 - the world fixture, imported above
    """The world's people as single sign-on makes them: each may sign in to the admin (is_staff)."""
    User.objects.filter(pk__in=[u.pk for u in world.users.values()]).update(is_staff=True)
    for user in world.users.values():
        user.refresh_from_db()
    return world.users


class Agent:
    """An agent's side of RFC 8628: form-encoded requests, as device-flow clients send them."""

    def __init__(self, client_id: str = "claude-code on laptop-7"):
        self.http, self.client_id = Client(), client_id

    def ask(self, scope: str = "", **extra):
        return self.http.post("/sso/device/code", {"client_id": self.client_id, "scope": scope, **extra},
                              HTTP_USER_AGENT="agent-cli/1.0")

    def codes(self, scope: str = "") -> dict:
        response = self.ask(scope)
        assert response.status_code == 200, response.content
        return response.json()

    def poll(self, device_code: str, **fields):
        body = {"grant_type": GRANT_TYPE, "device_code": device_code, "client_id": self.client_id, **fields}
        return self.http.post("/sso/device/token", body)


@pytest.fixture
def agent(flow) -> Agent:
    return Agent()


def browser_of(user, *, csrf: bool = False) -> Client:
    """A signed-in browser (the admin's session), with CSRF checks enforced when asked."""
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def wait_out_interval(device_code: str) -> None:
    """Moves the last poll back two minutes, as waiting out the interval would, without sleeping."""
    DeviceAuthorization.objects.filter(device_code_hash=device_code_digest(device_code)).update(
        last_polled_at=F("last_polled_at") - dt.timedelta(seconds=120))


def sign_in_of(device_code: str) -> DeviceAuthorization:
    return DeviceAuthorization.objects.get(device_code_hash=device_code_digest(device_code))


def oauth_error(response) -> str:
    body = response.json()
    assert set(body) >= {"error", "error_description"}, body
    assert response["Cache-Control"] == "no-store"
    return body["error"]
