"""The world of the authorization matrices (test_authorization_matrix.py, test_authorization_admin.py).

tests/accounts/api/conftest.py's `world`, extended by `town`: org-1 holds team-a (budget $50,
models gpt-4o and gpt-4o-mini) and the empty team-c; org-2 holds team-b. The columns, one person each:

  proxy     proxy admin
  orgadmin  admin of org-1 (so of team-a and team-c)
  teamadmin admin of team-a
  member    internal user in team-a
  viewer    read-only user in team-a
  nouser    a key of team-a with no user behind it
  stranger  admin of team-b in org-2, an internal user elsewhere
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

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
from gateway import model_services
from gateway.models import ModelDeployment
from memory.models import MemorySummary

ROLES = ("proxy", "orgadmin", "teamadmin", "member", "viewer", "nouser", "stranger")
BY = Actor.system("matrix setup")
PASSWORD = "a sturdy passphrase for tests 42"


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
