"""The authorization matrix of the operator's other surfaces: the admin's pages and actions, and the
management commands (test_authorization_matrix.py has the management API's).

Each row is what a staff user tries in the admin, or an operator runs in a shell; each column what a
person in that role must get, written out by hand (the world: tests/hardening/authorization_town.py).
A refused write changes nothing; the commands hold proxy-admin rights but stay inside every limit.
"""
from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import Client

from accounts.models import Organization, Team, TeamMembership, User, VirtualKey
from gateway.models import ModelDeployment
from tests.hardening.authorization_town import PASSWORD, PERSON, Town


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
