"""Fixtures for the management API: a master key, people in each role, and a JSON client."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.test import Client

from accounts import services
from accounts.models import OrganizationMembership, Role, TeamMembership
from accounts.policy import Actor

MASTER_KEY = "sk-master-test-0123456789abcdef"


@pytest.fixture
def master_key(monkeypatch) -> str:
    monkeypatch.setattr(settings.LLMUR, "master_keys", [MASTER_KEY])
    return MASTER_KEY


class Api:
    """Calls the management API as a LiteLLM script would: JSON in, JSON out, a bearer key."""

    def __init__(self, key: str | None):
        self.client, self.key = Client(), key

    def _headers(self) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.key}"} if self.key else {}

    def post(self, path: str, body: dict | None = None):
        return self.client.post(path, data=json.dumps(body or {}), content_type="application/json",
                                **self._headers())

    def get(self, path: str, **params):
        return self.client.get(path, params, **self._headers())


@pytest.fixture
def admin_api(db, master_key) -> Api:
    return Api(master_key)


def api_as(key: str) -> Api:
    return Api(key)


@dataclass
class World:
    """Two organizations; team A in org 1, team B in org 2; one person per role, each with a key."""

    org1: object
    org2: object
    team_a: object
    team_b: object
    keys: dict
    users: dict
    team_b_key: object
    team_b_plain: str
    team_a_key: object
    team_a_plain: str


@pytest.fixture
def world(db, master_key) -> World:
    by = Actor.system("test setup")
    org1 = services.organization_create(by=by, name="org-1", max_budget=100)
    org2 = services.organization_create(by=by, name="org-2")
    team_a = services.team_create(by=by, name="team-a", organization=org1, models=["gpt-4o", "gpt-4o-mini"],
                                  max_budget=50)
    team_b = services.team_create(by=by, name="team-b", organization=org2)
    users, keys = {}, {}
    for name, role in [("proxy", Role.PROXY_ADMIN), ("orgadmin", Role.ORG_ADMIN), ("teamadmin", Role.TEAM_ADMIN),
                       ("member", Role.INTERNAL_USER), ("viewer", Role.VIEWER), ("outsider", Role.INTERNAL_USER)]:
        user = services.user_create(by=by, username=name, email=f"{name}@example.com", role=role)
        users[name] = user
        _, keys[name] = services.key_create(by=by, user=user, key_alias=f"{name}-own")
    OrganizationMembership.objects.create(organization=org1, user=users["orgadmin"],
                                          role=OrganizationMembership.OrgRole.ADMIN)
    TeamMembership.objects.create(team=team_a, user=users["teamadmin"], role=TeamMembership.TeamRole.ADMIN)
    TeamMembership.objects.create(team=team_a, user=users["member"])
    TeamMembership.objects.create(team=team_a, user=users["viewer"])
    TeamMembership.objects.create(team=team_b, user=users["outsider"], role=TeamMembership.TeamRole.ADMIN)
    team_a_key, team_a_plain = services.key_create(by=by, team=team_a, key_alias="team-a-key", max_budget=5)
    team_b_key, team_b_plain = services.key_create(by=by, team=team_b, key_alias="team-b-key")
    return World(org1=org1, org2=org2, team_a=team_a, team_b=team_b, keys=keys, users=users,
                 team_b_key=team_b_key, team_b_plain=team_b_plain, team_a_key=team_a_key, team_a_plain=team_a_plain)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) >= {"message", "type", "param", "code"}, body
    return body["error"]
