"""The authorization matrix: every role × every management route × every privileged field, by hand.

Each row is one request an operator or an attacker might send; each column is what a caller in
that role must get. The expected answers are written out here, not derived from accounts.policy:
they are the specification the policy is held to (docs/security.md says the same in words). A
refusal must change nothing at all; an accepted write must change something.

The world (tests/accounts/api/conftest.py, extended by `town` below): org-1 holds team-a (budget $50, models
gpt-4o and gpt-4o-mini) and the empty team-c; org-2 holds team-b. Columns:

  proxy     proxy admin
  orgadmin  admin of org-1 (so of team-a and team-c)
  teamadmin admin of team-a
  member    internal user in team-a
  viewer    read-only user in team-a
  nouser    a key of team-a with no user behind it
  stranger  admin of team-b in org-2, an internal user elsewhere

Statuses: 200 done; 400 refused for its values (a limit above the parent's, an env reference the
operator did not allow); 403 refused for the caller's rights over something they may see; 404 for
something they may not see, alike for missing and hidden (issue 16.12).

The admin's pages and actions and the management commands have tables of their own below.
Routes and fields added later extend these tables: a route missing here is a route nobody has
checked.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import Client

from accounts import services
from accounts.models import (
    Budget,
    EndUser,
    Organization,
    OrganizationMembership,
    Project,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)
from accounts.policy import Actor
from gateway.models import ModelDeployment
from memory.models import MemorySummary
from tests.accounts.api.conftest import Api

ROLES = ("proxy", "orgadmin", "teamadmin", "member", "viewer", "nouser", "stranger")
HUGE = 10**6
BY = Actor.system("matrix setup")
PASSWORD = "a sturdy passphrase for tests 42"


# --------------------------------------------------------------------------- the world

@dataclass
class Town:
    world: Any
    team_c: Team
    project_a: Project
    project_b: Project
    limited: dict[str, str]      # each person's personal key, limited by a proxy admin: $1, gpt-4o-mini, 5 rpm
    blocked: dict[str, str]      # each person's personal key, blocked by a proxy admin
    member_team_key: str         # member's own key in team-a, $5
    db_model: str                # a deployment added at run time
    agent_sign_in: int           # an agent's sign-in, approved by member into team-a, key collected
    summaries: dict[str, int]    # memory: alice's in team-a and in team-b, one remembered by member's key


@pytest.fixture
def town(world, settings) -> Town:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    team_c = services.team_create(by=BY, name="team-c", organization=world.org1)
    project_a = services.project_create(by=BY, name="project-a", team=world.team_a)
    project_b = services.project_create(by=BY, name="project-b", team=world.team_b)
    limited, blocked = {}, {}
    for name in ("proxy", "orgadmin", "teamadmin", "member", "viewer", "outsider"):
        user = world.users[name]
        _, limited[name] = services.key_create(by=BY, user=user, key_alias=f"{name}-limited", max_budget=1,
                                               models=["gpt-4o-mini"], rpm_limit=5)
        _, blocked[name] = services.key_create(by=BY, user=user, key_alias=f"{name}-blocked", blocked=True)
    _, member_team_key = services.key_create(by=BY, user=world.users["member"], team=world.team_a,
                                             key_alias="member-team-key", max_budget=5)
    from gateway import model_services

    deployment = model_services.deployment_create(by=BY, model_name="house-model",
                                                  litellm_params={"model": "openai/house", "api_key": "sk-house-1"})
    agent = services.device_authorization_create(client_id="matrix-agent")
    services.device_approve(by=Actor.for_user(world.users["member"], "sso"), authorization=agent.authorization,
                            owners={"team": world.team_a})
    services.device_token(device_code=agent.device_code)
    services.organization_create(by=BY, name="org-3")
    services.budget_create(by=BY, budget_id="tier-1", max_budget=5)
    services.end_user_create(by=BY, user_id="cust-1")
    services.end_user_create(by=BY, user_id="cust-blocked", blocked=True)
    summaries = {"a": _summary(world.team_a, "alice"), "b": _summary(world.team_b, "alice"),
                 "member": _summary(world.team_a, "carol", user=world.users["member"])}
    return Town(summaries=summaries, world=world, team_c=team_c, project_a=project_a, project_b=project_b, limited=limited,
                blocked=blocked, member_team_key=member_team_key, db_model=deployment.deployment_id,
                agent_sign_in=agent.authorization.pk)


PERSON = {"stranger": "outsider"}   # the column's person in the world


def _summary(team: Team, end_user: str, user: User | None = None) -> int:
    """A memory summary of an end user, made by a key of the team (or of the user)."""
    from django.utils import timezone

    from accounts.keys import secret_encrypt
    from memory.models import MemorySummary
    from memory.services import subject_ids

    scope, subject, now = f"team:{team.pk}", f"end_user:{end_user}", timezone.now()
    return MemorySummary.objects.create(
        subject_id=subject_ids(pairs=[(scope, subject)])[(scope, subject)], session_id=f"{end_user}-{team.pk}",
        encrypted_summary=secret_encrypt("remembered"), model="m", request_id="r", session_started_at=now,
        session_ended_at=now, expires_at=now, team_id=team.pk, organization_id=team.organization_id,
        user_id=user.pk if user else None).pk


def bearer(town: Town, who: str) -> str:
    if who == "nouser":
        return town.world.team_a_plain
    return town.world.keys[PERSON.get(who, who)]


def resolve(value: Any, town: Town, who: str) -> Any:
    """Placeholders in a request: @team_a, @own_limited, @self, ..."""
    if isinstance(value, dict):
        return {k: resolve(v, town, who) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, town, who) for v in value]
    if not isinstance(value, str) or not value.startswith("@"):
        return value
    w = town.world
    person = PERSON.get(who, who)
    table = {
        "@team_a": w.team_a.public_id, "@team_b": w.team_b.public_id, "@team_c": town.team_c.public_id,
        "@org1": w.org1.public_id, "@org2": w.org2.public_id, "@project_a": town.project_a.pk, "@project_b": town.project_b.pk,
        "@team_a_key": w.team_a_plain, "@team_b_key": w.team_b_plain, "@member_team_key": town.member_team_key,
        "@db_model": town.db_model, "@self": person if who != "nouser" else "nobody",
        "@org3": Organization.objects.get(name="org-3").public_id,
        "@own_limited": town.limited.get(person, "sk-none"), "@own_blocked": town.blocked.get(person, "sk-none"),
        "@agent_sign_in": town.agent_sign_in,
    }
    return table[value]


def state() -> dict:
    """Everything that decides who may do and spend what."""
    return {
        "users": sorted(User.objects.values_list("username", "role", "email", "password", "is_active", "max_budget",
                                                 "rpm_limit", "tpm_limit", "allowed_models")),
        "orgs": sorted(Organization.objects.values_list("pk", "name", "max_budget", "blocked")),
        "teams": sorted(Team.objects.values_list("pk", "name", "organization_id", "max_budget", "rpm_limit",
                                                 "tpm_limit", "allowed_models", "blocked")),
        "team_members": sorted(TeamMembership.objects.values_list("team_id", "user__username", "role")),
        "org_members": sorted(OrganizationMembership.objects.values_list("organization_id", "user__username",
                                                                         "role")),
        "projects": sorted(Project.objects.values_list("pk", "name", "team_id", "organization_id", "max_budget")),
        "keys": sorted(VirtualKey.objects.values_list("pk", "key_hash", "user__username", "team_id",
                                                      "organization_id", "project_id", "max_budget", "rpm_limit",
                                                      "tpm_limit", "allowed_models", "blocked", "expires_at")),
        "deployments": sorted(ModelDeployment.objects.values_list("deployment_id", "model_name")),
        "end_users": sorted(EndUser.objects.values_list("user_id", "blocked", "max_budget", "tpm_limit", "budget_id")),
        "budgets": sorted(Budget.objects.values_list("budget_id", "max_budget", "tpm_limit")),
        "memory": sorted(MemorySummary.objects.values_list("pk", flat=True)),
    }


# --------------------------------------------------------------------------- the management API

R = tuple[str, tuple[int, int, int, int, int, int, int], dict]

#  route                              prox orga team memb view nusr strg  request
API: list[R] = [
    # ---- users: accounts are a proxy admin's or their own (16.2)
    ("POST /user/new",               (200, 403, 403, 403, 403, 403, 403), {"user_id": "n1"}),
    ("POST /user/new",               (200, 200, 200, 403, 403, 403, 404), {"user_id": "n2", "teams": ["@team_a"]}),
    ("POST /user/new",               (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "n3", "teams": ["@team_a"], "user_role": "proxy_admin"}),
    ("POST /user/new",               (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "n4", "teams": ["@team_a"], "max_budget": 10}),
    ("POST /user/new",               (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "n5", "teams": ["@team_a"], "models": ["gpt-4o"]}),
    ("POST /user/new",               (200, 404, 404, 404, 403, 403, 200), {"user_id": "n6", "teams": ["@team_b"]}),
    # without user_id one is generated; creating still follows the rules above
    ("POST /user/new",               (200, 200, 200, 403, 403, 403, 404), {"teams": ["@team_a"]}),
    # an unknown user_id is created implicitly (as LiteLLM does) only for a proxy admin; else 404
    ("POST /user/update",            (200, 404, 404, 404, 403, 403, 404), {"user_id": "ghost", "metadata": {"a": 1}}),
    ("POST /user/update",            (200, 403, 403, 200, 403, 403, 404), {"user_id": "member", "password": PASSWORD}),
    ("POST /user/update",            (200, 403, 403, 200, 403, 403, 404),
        {"user_id": "member", "user_email": "new@evil.example"}),
    ("POST /user/update",            (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "member", "user_role": "proxy_admin"}),
    ("POST /user/update",            (200, 403, 403, 403, 403, 403, 404), {"user_id": "member", "max_budget": HUGE}),
    ("POST /user/update",            (200, 403, 403, 403, 403, 403, 404), {"user_id": "member", "models": ["gpt-4o"]}),
    ("POST /user/update",            (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "member", "rpm_limit": HUGE, "tpm_limit": HUGE}),
    ("POST /user/update",            (200, 404, 404, 404, 403, 403, 200),
        {"user_id": "outsider", "password": PASSWORD}),
    ("POST /user/delete",            (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["member"]}),
    ("GET /user/info",               (200, 200, 200, 200, 404, 403, 404), {"user_id": "member"}),
    ("GET /user/list",               (200, 200, 200, 200, 200, 403, 200), {}),
    # ---- members: no pulling in people from elsewhere (16.2)
    ("POST /team/member_add",        (200, 200, 200, 403, 403, 403, 404),
        {"team_id": "@team_a", "member": {"user_id": "brand-new"}}),
    ("POST /team/member_add",        (200, 403, 403, 403, 403, 403, 404),
        {"team_id": "@team_a", "member": {"user_id": "outsider"}}),
    ("POST /team/member_add",        (200, 403, 403, 403, 403, 403, 404),
        {"team_id": "@team_a", "member": {"user_id": "proxy"}}),
    # someone already in the team: 400, as LiteLLM answers (after the same checks as any add)
    ("POST /team/member_add",        (400, 400, 400, 403, 403, 403, 404),
        {"team_id": "@team_a", "member": {"user_id": "member", "role": "admin"}}),
    ("POST /team/member_add",        (200, 404, 404, 404, 403, 403, 403),
        {"team_id": "@team_b", "member": {"user_id": "member"}}),
    ("POST /team/member_delete",     (200, 200, 200, 403, 403, 403, 404), {"team_id": "@team_a", "user_id": "member"}),
    # not a member (or nobody): 400, as LiteLLM answers
    ("POST /team/member_delete",     (400, 400, 400, 403, 403, 403, 404),
        {"team_id": "@team_a", "user_id": "outsider"}),
    ("POST /organization/member_add", (200, 403, 404, 404, 403, 403, 404),
        {"organization_id": "@org1", "member": {"user_id": "outsider"}}),
    ("POST /organization/member_add", (200, 200, 404, 404, 403, 403, 404),
        {"organization_id": "@org1", "member": {"user_id": "fresh", "role": "org_admin"}}),
    # ---- teams: a team's own budget, limits, models and blocked state are set from above it
    ("POST /team/new",               (200, 403, 403, 403, 403, 403, 403), {"team_alias": "t0"}),
    # the client's team_id; one already taken is a 400, but only after the caller may create teams at all
    ("POST /team/new",               (200, 403, 403, 403, 403, 403, 403), {"team_id": "client-chosen-id"}),
    ("POST /team/new",               (400, 403, 403, 403, 403, 403, 403), {"team_id": "@team_b"}),
    ("POST /team/new",               (200, 200, 404, 404, 403, 403, 404),
        {"team_alias": "t1", "organization_id": "@org1"}),
    ("POST /team/new",               (400, 400, 404, 404, 403, 403, 404),
        {"team_alias": "t2", "organization_id": "@org1", "max_budget": 1000}),
    ("POST /team/update",            (200, 200, 200, 403, 403, 403, 404),
        {"team_id": "@team_a", "team_alias": "renamed"}),
    ("POST /team/update",            (200, 200, 403, 403, 403, 403, 404), {"team_id": "@team_a", "max_budget": 60}),
    ("POST /team/update",            (400, 400, 403, 403, 403, 403, 404), {"team_id": "@team_a", "max_budget": 1000}),
    ("POST /team/update",            (200, 200, 403, 403, 403, 403, 404), {"team_id": "@team_a", "models": ["claude"]}),
    ("POST /team/update",            (200, 200, 403, 403, 403, 403, 404),
        {"team_id": "@team_a", "rpm_limit": HUGE, "tpm_limit": HUGE}),
    ("POST /team/update",            (200, 200, 403, 403, 403, 403, 404), {"team_id": "@team_a", "blocked": True}),
    ("POST /team/update",            (200, 404, 404, 404, 403, 403, 403), {"team_id": "@team_b", "max_budget": 1}),
    ("POST /team/delete",            (200, 200, 404, 404, 403, 403, 404), {"team_ids": ["@team_c"]}),
    ("POST /team/delete",            (400, 400, 403, 403, 403, 403, 404), {"team_ids": ["@team_a"]}),
    ("GET /team/info",               (200, 404, 404, 404, 404, 404, 200), {"team_id": "@team_b"}),
    # a key with no user reads its own team (and among its keys, only itself)
    ("GET /team/info",               (200, 200, 200, 200, 200, 200, 404), {"team_id": "@team_a"}),
    ("GET /team/list",               (200, 404, 404, 404, 404, 403, 404), {"organization_id": "@org2"}),
    # ---- keys: inside a scope the issuer administers, within its limits (16.3)
    ("POST /key/generate",           (200, 200, 200, 200, 403, 403, 200), {}),
    # an unknown user_id is created implicitly only for a proxy admin; else 404
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 404), {"user_id": "ghost"}),
    ("POST /key/generate",           (200, 200, 200, 200, 403, 403, 404), {"team_id": "@team_a"}),
    ("POST /key/generate",           (400, 400, 400, 400, 403, 403, 404), {"team_id": "@team_a", "models": ["claude"]}),
    ("POST /key/generate",           (400, 400, 400, 400, 403, 403, 404), {"team_id": "@team_a", "max_budget": 100}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 200), {"team_id": "@team_b"}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 404), {"organization_id": "@org2"}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 200), {"project_id": "@project_b"}),
    ("POST /key/generate",           (200, 200, 200, 200, 403, 403, 404), {"user_id": "member"}),
    ("POST /key/generate",           (200, 400, 400, 200, 403, 403, 404), {"user_id": "member", "models": ["claude"]}),
    ("POST /key/generate",           (200, 400, 400, 200, 403, 403, 404), {"user_id": "member", "max_budget": HUGE}),
    ("POST /key/generate",           (200, 200, 200, 404, 403, 403, 404), {"user_id": "viewer", "team_id": "@team_a"}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 404), {"user_id": "proxy", "team_id": "@team_a"}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 200),
        {"user_id": "outsider", "team_id": "@team_b"}),
    ("POST /key/update",             (200, 200, 200, 404, 403, 403, 404), {"key": "@team_a_key", "max_budget": 40}),
    ("POST /key/update",             (400, 400, 400, 404, 403, 403, 404), {"key": "@team_a_key", "max_budget": 60}),
    ("POST /key/update",             (400, 400, 400, 404, 403, 403, 404), {"key": "@team_a_key", "models": ["claude"]}),
    # ---- owners only tighten their keys (16.5)
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403), {"key": "@own_limited", "max_budget": HUGE}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403), {"key": "@own_limited", "max_budget": None}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403), {"key": "@own_limited", "models": []}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403),
        {"key": "@own_limited", "models": ["gpt-4o-mini", "gpt-4o"]}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403), {"key": "@own_limited", "rpm_limit": None}),
    ("POST /key/update",             (200, 200, 200, 200, 403, 403, 200), {"key": "@own_limited", "tpm_limit": 10}),
    ("POST /key/update",             (200, 200, 200, 200, 403, 403, 200),
        {"key": "@own_limited", "max_budget": 0.5, "rpm_limit": 1}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 404),
        {"key": "@own_limited", "team_id": "@team_a"}),
    ("POST /key/update",             (200, 200, 200, 403, 403, 403, 404),
        {"key": "@member_team_key", "max_budget": 40}),
    ("POST /key/update",             (200, 200, 200, 200, 403, 403, 404), {"key": "@member_team_key", "max_budget": 1}),
    ("POST /key/update",             (200, 404, 404, 404, 403, 403, 200), {"key": "@team_b_key", "user_id": "@self"}),
    ("POST /key/block",              (200, 200, 200, 200, 403, 403, 200), {"key": "@own_limited"}),
    ("POST /key/unblock",            (200, 403, 403, 403, 403, 403, 403), {"key": "@own_blocked"}),
    ("POST /key/block",              (200, 404, 404, 404, 403, 403, 200), {"key": "@team_b_key"}),
    ("POST /key/regenerate",         (200, 404, 404, 404, 403, 403, 200), {"key": "@team_b_key"}),
    ("POST /key/regenerate",         (200, 200, 200, 200, 403, 403, 200), {"key": "@own_limited"}),
    ("POST /key/delete",             (200, 200, 200, 404, 403, 403, 404), {"keys": ["@team_a_key"]}),
    ("POST /key/delete",             (200, 200, 200, 200, 403, 403, 200), {"keys": ["@own_blocked"]}),
    ("GET /key/info",                (200, 404, 404, 404, 404, 404, 200), {"key": "@team_b_key"}),
    # every key reads about itself, one with no user too
    ("GET /key/info",                (200, 200, 200, 200, 200, 200, 200), {}),
    ("GET /key/list",                (200, 200, 200, 403, 403, 403, 404), {"team_id": "@team_a"}),
    # ---- models: proxy admins only; run-time deployments name only allowed variables (16.7)
    ("POST /model/new",              (200, 403, 403, 403, 403, 403, 403),
        {"model_name": "m1", "litellm_params": {"model": "openai/m1", "api_key": "sk-literal-1"}}),
    ("POST /model/new",              (400, 403, 403, 403, 403, 403, 403),
        {"model_name": "m2", "litellm_params": {"model": "openai/m2", "api_base": "http://attacker.example/v1",
                                                "api_key": "os.environ/LLMUR_CONFIGURATION"}}),
    ("POST /model/delete",           (200, 403, 403, 403, 403, 403, 403), {"id": "@db_model"}),
    ("GET /model/info",              (200, 200, 200, 200, 200, 200, 200), {}),
    # ---- organizations
    ("GET /organization/list",       (200, 200, 200, 200, 200, 403, 200), {}),
    ("POST /organization/new",       (200, 403, 403, 403, 403, 403, 403), {"organization_alias": "o-new"}),
    ("POST /organization/new",       (200, 403, 403, 403, 403, 403, 403), {"organization_id": "o-chosen"}),
    ("POST /organization/new",       (400, 403, 403, 403, 403, 403, 403), {"organization_id": "@org2"}),
    ("GET /organization/info",       (200, 200, 404, 404, 404, 403, 404), {"organization_id": "@org1"}),
    # ---- projects: inside the team or organization that owns them
    ("POST /project/new",            (200, 200, 200, 403, 403, 403, 404),
        {"project_alias": "p1", "team_id": "@team_a"}),
    ("POST /project/new",            (400, 400, 400, 403, 403, 403, 404),
        {"project_alias": "p2", "team_id": "@team_a", "max_budget": 1000}),
    ("POST /project/new",            (200, 404, 404, 404, 403, 403, 404),
        {"project_alias": "p3", "organization_id": "@org2"}),
    ("POST /project/update",         (200, 200, 200, 403, 403, 403, 404),
        {"project_id": "@project_a", "max_budget": 10}),
    ("POST /project/update",         (400, 400, 400, 403, 403, 403, 404),
        {"project_id": "@project_a", "models": ["claude"]}),
    ("POST /project/delete",         (200, 200, 200, 403, 403, 403, 404), {"project_ids": ["@project_a"]}),
    ("GET /project/info",            (200, 404, 404, 404, 404, 403, 200), {"project_id": "@project_b"}),
    ("GET /project/list",            (200, 404, 404, 404, 404, 403, 200), {"team_id": "@team_b"}),
    # ---- spend
    ("GET /spend/logs",              (200, 404, 404, 404, 404, 403, 200), {"team_id": "@team_b"}),
    ("GET /spend/logs",              (200, 404, 404, 404, 404, 403, 200), {"api_key": "@team_b_key"}),
    ("GET /global/spend/report",     (200, 200, 200, 200, 200, 403, 200), {}),
    # ---- agent keys (RFC 8628 sign-in): member's agent's key in team-a; owners and the scope's admins revoke it
    ("GET /sso/agent_keys",          (200, 200, 200, 200, 200, 403, 200), {}),
    ("POST /sso/agent_keys/revoke",  (200, 200, 200, 200, 404, 403, 404), {"id": "@agent_sign_in"}),
    # ---- end users (LiteLLM's customers, both paths) and shared budgets: proxy admins only
    ("POST /customer/new",           (200, 403, 403, 403, 403, 403, 403), {"user_id": "c-new"}),
    ("POST /end_user/new",           (200, 403, 403, 403, 403, 403, 403), {"user_id": "c-new", "max_budget": 1}),
    ("GET /customer/info",           (200, 403, 403, 403, 403, 403, 403), {"end_user_id": "cust-1"}),
    ("GET /end_user/info",           (200, 403, 403, 403, 403, 403, 403), {"end_user_id": "cust-1"}),
    ("POST /customer/update",        (200, 403, 403, 403, 403, 403, 403), {"user_id": "cust-1", "max_budget": 2}),
    ("POST /end_user/update",        (200, 403, 403, 403, 403, 403, 403), {"user_id": "cust-1", "budget_id": "tier-1"}),
    ("POST /customer/delete",        (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-1"]}),
    ("POST /end_user/delete",        (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-1"]}),
    ("GET /customer/list",           (200, 403, 403, 403, 403, 403, 403), {}),
    ("GET /end_user/list",           (200, 403, 403, 403, 403, 403, 403), {}),
    ("POST /customer/block",         (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-1"]}),
    ("POST /end_user/block",         (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["c-unseen"]}),
    ("POST /customer/unblock",       (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-blocked"]}),
    ("POST /end_user/unblock",       (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-blocked"]}),
    ("POST /budget/new",             (200, 403, 403, 403, 403, 403, 403), {"budget_id": "b-new", "max_budget": 1}),
    ("POST /budget/update",          (200, 403, 403, 403, 403, 403, 403), {"budget_id": "tier-1", "max_budget": 3}),
    ("POST /budget/info",            (200, 403, 403, 403, 403, 403, 403), {"budgets": ["tier-1"]}),
    ("GET /budget/list",             (200, 403, 403, 403, 403, 403, 403), {}),
    ("POST /budget/delete",          (200, 403, 403, 403, 403, 403, 403), {"id": "tier-1"}),
    ("POST /key/generate",           (200, 403, 403, 403, 403, 403, 403), {"budget_id": "tier-1"}),
    ("POST /team/update",            (200, 403, 403, 403, 403, 403, 404), {"team_id": "@team_a", "budget_id": "tier-1"}),
    # ---- members of teams and organizations, organizations deleted
    ("POST /team/member_update",     (200, 200, 200, 403, 403, 403, 404),
        {"team_id": "@team_a", "user_id": "member", "role": "admin"}),
    ("POST /team/member_update",     (200, 404, 404, 404, 403, 403, 200),
        {"team_id": "@team_b", "user_id": "outsider", "role": "user"}),
    ("POST /organization/member_update", (200, 200, 404, 404, 403, 403, 404),
        {"organization_id": "@org1", "user_id": "orgadmin", "role": "internal_user"}),
    ("POST /organization/member_delete", (200, 200, 404, 404, 403, 403, 404),
        {"organization_id": "@org1", "user_id": "orgadmin"}),
    ("POST /organization/delete",    (200, 404, 404, 404, 403, 403, 404), {"organization_ids": ["@org3"]}),
    ("POST /organization/delete",    (400, 403, 404, 404, 403, 403, 404), {"organization_ids": ["@org1"]}),
    # ---- models and spend, continued
    ("POST /model/update",           (200, 403, 403, 403, 403, 403, 403),
        {"model_name": "renamed-model", "model_info": {"id": "@db_model"}}),
    ("GET /v2/model/info",           (200, 200, 200, 200, 200, 200, 200), {}),
    ("GET /model_group/info",        (200, 200, 200, 200, 200, 200, 200), {}),
    ("GET /global/spend/teams",      (200, 200, 200, 200, 200, 403, 200), {}),
    # ---- cross-session memory (one summary's routes: MEMORY_ITEM below)
    ("GET /memory/summaries",        (200, 200, 200, 200, 200, 403, 200), {}),
    ("POST /memory/end_user/delete", (200, 200, 200, 403, 403, 403, 200), {"end_user": "alice"}),
]


def _api_id(row: R) -> str:
    route, _, body = row
    return f"{route} {json.dumps(body, sort_keys=True)}"[:120]


# Reads that LiteLLM made POST routes: a 200 from them changes nothing.
READS_BY_POST = {"/budget/info"}


@pytest.mark.parametrize("row", API, ids=[_api_id(r) for r in API])
def test_management_api(town, row):
    route, expected, body = row
    method, path = route.split(" ", 1)
    mismatches = []
    for who, status in zip(ROLES, expected, strict=True):
        with transaction.atomic():
            api = Api(bearer(town, who))
            request = resolve(body, town, who)
            before = state()
            response = api.post(path, request) if method == "POST" else api.get(path, **request)
            after = state()
            transaction.set_rollback(True)
        got = response.status_code
        if got != status:
            mismatches.append(f"{who}: expected {status}, got {got}: {response.content[:240]!r}")
        elif got >= 400:
            if after != before:
                mismatches.append(f"{who}: refused with {got} but changed {_diff(before, after)}")
            if set(response.json()) != {"error"}:
                mismatches.append(f"{who}: refusal not in the OpenAI error shape: {response.content[:200]!r}")
        elif method == "POST" and path not in READS_BY_POST and after == before:
            mismatches.append(f"{who}: answered {got} but changed nothing")
    assert not mismatches, "\n".join(mismatches)


def _diff(before: dict, after: dict) -> str:
    return ", ".join(name for name in before if before[name] != after[name])


# One memory summary read or deleted: (method, which summary, statuses per role).
MEMORY_ITEM = [
    ("GET",    "a",      (200, 200, 200, 404, 404, 403, 404)),
    ("DELETE", "a",      (200, 200, 200, 404, 404, 403, 404)),
    ("GET",    "member", (200, 200, 200, 200, 404, 403, 404)),
    ("DELETE", "b",      (200, 404, 404, 404, 404, 403, 200)),
]


@pytest.mark.parametrize("row", MEMORY_ITEM, ids=[f"{m} {w}" for m, w, _ in MEMORY_ITEM])
def test_memory_summary(town, row):
    method, which, expected = row
    path = f"/memory/summaries/{town.summaries[which]}"
    mismatches = []
    for who, status in zip(ROLES, expected, strict=True):
        with transaction.atomic():
            api = Api(bearer(town, who))
            before = state()
            response = (api.get(path) if method == "GET"
                        else api.client.delete(path, **api._headers()))
            after = state()
            transaction.set_rollback(True)
        if response.status_code != status:
            mismatches.append(f"{who}: expected {status}, got {response.status_code}: {response.content[:200]!r}")
        elif (after != before) != (method == "DELETE" and status == 200):
            mismatches.append(f"{who}: {method} answered {status} and changed {_diff(before, after) or 'nothing'}")
    assert not mismatches, "\n".join(mismatches)


def test_every_management_route_is_in_the_table():
    """A route added to the management API (any router authenticated like it) without a row here fails."""
    from accounts.api import management_auth
    from llmur.api import api as ninja_api

    covered = {route.split(" ", 1)[1] for route, _, _ in API}
    same_handler = {"/key/{key}/regenerate",  # the path form of /key/regenerate
                    "/memory/summaries/{summary_id}"}  # test_memory_summary
    routes = {"/" + path.lstrip("/") for _, router in ninja_api._routers if router.auth is management_auth
              for path in router.path_operations}
    missing = routes - covered - same_handler
    assert not missing, f"management routes with no row in the authorization matrix: {sorted(missing)}"


# --------------------------------------------------------------------------- spend: who sees whose

def test_spend_each_role_sees(town):
    """/spend/logs: hand-written sets of the teams whose spend each role sees (None: no team)."""
    import datetime as dt
    import uuid

    from billing.models import SpendLog

    w = town.world
    now = dt.datetime(2026, 4, 10, 12, tzinfo=dt.timezone.utc)
    for team, key, user in ((w.team_a, w.team_a_key, None), (w.team_b, w.team_b_key, None),
                            (None, VirtualKey.objects.get(key_alias="member-own"), w.users["member"])):
        SpendLog.objects.create(request_id=uuid.uuid4().hex, key=key, team=team, user=user, model="gpt-4o",
                                cost=Decimal("0.01"), started_at=now, ended_at=now)
    expected = {
        "proxy": {"team-a", "team-b", None}, "orgadmin": {"team-a"}, "teamadmin": {"team-a"},
        "member": {None}, "viewer": set(), "stranger": {"team-b"},
    }
    names = {t.public_id: t.name for t in Team.objects.all()}
    for who, teams in expected.items():
        rows = Api(bearer(town, who)).get("/spend/logs").json()
        assert {names.get(r["team_id"]) for r in rows} == teams, who


# --------------------------------------------------------------------------- the admin

def _staff(town: Town, who: str) -> Client:
    user = town.world.users[PERSON.get(who, who)]
    User.objects.filter(pk=user.pk).update(is_staff=True)
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))
    return client


def _form(**fields) -> dict:
    """A change form's POST: the fields given plus empty management forms for its inlines."""
    data = {"metadata": "{}", "aliases": "{}", "allowed_models": ""}
    for prefix in ("memberships", "projects", "keys", "credentials"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    return {**data, **fields}


def admin_member_password(town, client):
    member = town.world.users["member"]
    client.post(f"/admin/accounts/user/{member.pk}/password/", {"password1": PASSWORD, "password2": PASSWORD})
    return User.objects.get(pk=member.pk).check_password(PASSWORD)


def admin_member_email(town, client):
    member = town.world.users["member"]
    client.post(f"/admin/accounts/user/{member.pk}/change/", {
        "username": "member", "email": "taken@evil.example", "role": "internal_user", "is_active": "on",
        "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00", "metadata": "{}", "allowed_models": ""})
    return User.objects.get(pk=member.pk).email == "taken@evil.example"


def admin_team_a_budget(town, client, budget="60"):
    team = town.world.team_a
    client.post(f"/admin/accounts/team/{team.pk}/change/", _form(
        name="team-a", organization=town.world.org1.pk, allowed_models="gpt-4o, gpt-4o-mini", max_budget=budget))
    return Team.objects.get(pk=team.pk).max_budget == Decimal(budget)


def admin_team_a_budget_above_org(town, client):
    return admin_team_a_budget(town, client, budget="500")


def admin_org1_budget(town, client):
    org = town.world.org1
    client.post(f"/admin/accounts/organization/{org.pk}/change/", {
        "name": "org-1", "metadata": "{}", "allowed_models": "", "max_budget": "1000",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})
    return Organization.objects.get(pk=org.pk).max_budget == 1000


def admin_inline_adds_outsider(town, client):
    team = town.world.team_a
    data = _form(name="team-a", organization=town.world.org1.pk, allowed_models="gpt-4o, gpt-4o-mini",
                 max_budget="50")
    data.update({"memberships-TOTAL_FORMS": "1", "memberships-0-user": town.world.users["outsider"].pk,
                 "memberships-0-role": "user", "memberships-0-team": team.pk})
    client.post(f"/admin/accounts/team/{team.pk}/change/", data)
    return TeamMembership.objects.filter(team=team, user__username="outsider").exists()


def admin_membership_page_adds_outsider(town, client):
    client.post("/admin/accounts/teammembership/add/", {"team": town.world.team_a.pk,
                                                         "user": town.world.users["outsider"].pk, "role": "user"})
    return TeamMembership.objects.filter(team=town.world.team_a, user__username="outsider").exists()


def admin_blocks_team_a(town, client):
    client.post("/admin/accounts/team/", {"action": "block_selected", "_selected_action": [town.world.team_a.pk]})
    return Team.objects.get(pk=town.world.team_a.pk).blocked


def _own(town, who, kind):
    return VirtualKey.objects.get(key_alias=f"{PERSON.get(who, who)}-{kind}")


def admin_unblocks_own_key(town, client, who):
    key = _own(town, who, "blocked")
    client.post("/admin/accounts/virtualkey/", {"action": "unblock_selected", "_selected_action": [key.pk]})
    return not VirtualKey.objects.get(pk=key.pk).blocked


def admin_raises_own_key(town, client, who):
    key = _own(town, who, "limited")
    client.post(f"/admin/accounts/virtualkey/{key.pk}/change/", {
        "key_alias": key.key_alias, "user": key.user_id, "allowed_models": "gpt-4o-mini", "metadata": "{}",
        "aliases": "{}", "max_budget": "1000", "rpm_limit": "5"})
    return VirtualKey.objects.get(pk=key.pk).max_budget == 1000


def admin_key_in_team_b(town, client):
    client.post("/admin/accounts/virtualkey/add/", {"key_alias": "sneaky", "team": town.world.team_b.pk,
                                                    "metadata": "{}", "aliases": "{}"})
    return VirtualKey.objects.filter(key_alias="sneaky", team=town.world.team_b).exists()


def admin_revokes_members_agent_key(town, client):
    client.post("/admin/accounts/deviceauthorization/", {"action": "revoke_selected",
                                                         "_selected_action": [town.agent_sign_in]})
    return VirtualKey.objects.get(device_authorization__pk=town.agent_sign_in).blocked


def admin_adds_deployment(town, client):
    client.post("/admin/gateway/modeldeployment/add/", {
        "model_name": "admin-added", "upstream_model": "openai/x", "api_key": "sk-admin-typed",
        "extra_params": "{}", "model_info": "{}", "is_active": "on"})
    return ModelDeployment.objects.filter(model_name="admin-added").exists()


def admin_reads_deployments(town, client):
    return client.get("/admin/gateway/modeldeployment/").status_code == 200


def admin_reads_audit_log(town, client):
    return client.get("/admin/accounts/auditentry/").status_code == 200


A = tuple[str, tuple[bool, bool, bool, bool, bool, bool], Any]
ADMIN_ROLES = ("proxy", "orgadmin", "teamadmin", "member", "viewer", "stranger")  # a key with no user cannot sign in
Y, N = True, False   # done, refused

#  what a staff user tries in the admin            (proxy, orgadmin, teamadmin, member, viewer, stranger)
ADMIN: list[A] = [
    ("set member's password",                          (Y, N, N, Y, N, N),  admin_member_password),
    ("set member's email",                             (Y, N, N, Y, N, N),  admin_member_email),
    ("raise team-a's budget to 60",                    (Y, Y, N, N, N, N),  admin_team_a_budget),
    ("raise team-a's budget above org-1's",            (N, N, N, N, N, N),  admin_team_a_budget_above_org),
    ("raise org-1's budget",                           (Y, N, N, N, N, N),  admin_org1_budget),
    ("add team-b's admin to team-a (inline)",          (Y, N, N, N, N, N),  admin_inline_adds_outsider),
    ("add team-b's admin to team-a (membership page)", (Y, N, N, N, N, N),  admin_membership_page_adds_outsider),
    ("block team-a (action)",                          (Y, Y, N, N, N, N),  admin_blocks_team_a),
    ("unblock own blocked key (action)",               (Y, N, N, N, N, N),  admin_unblocks_own_key),
    ("raise own limited key's budget",                 (Y, N, N, N, N, N),  admin_raises_own_key),
    ("issue a key in team-b",                          (Y, N, N, N, N, Y),  admin_key_in_team_b),
    ("revoke member's agent key in team-a (action)",   (Y, Y, Y, Y, N, N),  admin_revokes_members_agent_key),
    ("add a deployment",                               (Y, N, N, N, N, N),  admin_adds_deployment),
    ("open the deployments page (upstream details)",   (Y, N, N, N, N, N),  admin_reads_deployments),
    ("open the audit log",                             (Y, N, N, N, N, N),  admin_reads_audit_log),
]


@pytest.mark.parametrize("row", ADMIN, ids=[r[0] for r in ADMIN])
def test_admin(town, row):
    what, expected, attempt = row
    mismatches = []
    for who, done in zip(ADMIN_ROLES, expected, strict=True):
        with transaction.atomic():
            client = _staff(town, who)
            args = (town, client, who) if "who" in attempt.__code__.co_varnames else (town, client)
            result = attempt(*args)
            transaction.set_rollback(True)
        if result is not done:
            mismatches.append(f"{who}: expected {'done' if done else 'refused'}, was {'done' if result else 'refused'}")
    assert not mismatches, "\n".join(mismatches)


def test_a_refused_admin_write_says_why_and_changes_nothing(town):
    """The refusal is a message on the page, not a 500 (the admin's writes go through the services)."""
    client = _staff(town, "teamadmin")
    team = town.world.team_a
    data = _form(name="team-a", max_budget="50")
    data.update({"memberships-TOTAL_FORMS": "1", "memberships-0-user": town.world.users["outsider"].pk,
                 "memberships-0-role": "user", "memberships-0-team": team.pk})
    response = client.post(f"/admin/accounts/team/{team.pk}/change/", data, follow=True)
    assert response.status_code == 200
    assert "already exists and belongs to teams or organizations you do not administer" in response.content.decode()
    assert not TeamMembership.objects.filter(team=team, user__username="outsider").exists()


# --------------------------------------------------------------------------- management commands

C = tuple[str, list[str], bool]

#  the operator's shell: proxy-admin rights, still inside every limit
COMMANDS: list[C] = [
    ("key in team-a within its budget",          ["--team", "team-a", "--max-budget", "10"],       True),
    ("key in team-a above its budget",           ["--team", "team-a", "--max-budget", "1000"],     False),
    ("key in team-a with a model it lacks",      ["--team", "team-a", "--models", "claude"],       False),
    ("key for member, personal",                 ["--user", "member"],                             True),
    ("key in project-b with a rate limit",       ["--project", "project-b", "--rpm", "5"],         True),
]


@pytest.mark.parametrize("row", COMMANDS, ids=[r[0] for r in COMMANDS])
def test_generate_key_command(town, row):
    _, args, done = row
    before = VirtualKey.objects.count()
    out = io.StringIO()
    if done:
        call_command("generate_key", *args, stdout=out)
        assert VirtualKey.objects.count() == before + 1 and out.getvalue().strip().splitlines()[-1].startswith("sk-")
    else:
        with pytest.raises(CommandError) as refused:
            call_command("generate_key", *args, stdout=out)
        assert refused.value.returncode == 2 and "--" in str(refused.value)
        assert VirtualKey.objects.count() == before
