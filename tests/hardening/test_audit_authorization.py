"""The outside audit's authorization findings on people and keys (issue 16: items 2, 3, 5 and 12's
probing part), each reproduced as the audit described it, through the management API, the admin and
a real server; items 7 and 8, on deployments, are in test_audit_deployments.py.

Every test here failed on the code before accounts/policy and passes after; tests/admin/test_oidc.py
holds 14 and 15; test_authorization_matrix.py and test_authorization_admin.py the tables of who may do what.
The world is tests/accounts/api/conftest.py's: team-a (org-1, gpt-4o and gpt-4o-mini, $50) run by teamadmin
with member and viewer in it; team-b (org-2) run by outsider.
"""
from __future__ import annotations

import re
import time

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import Team, TeamMembership, User, VirtualKey
from tests.accounts.api.conftest import Api, error_of
from tests.conftest import chat_status

NEW_PASSWORD = "taken-over password 77"
OLD_PASSWORD = "bob's own password 31"
MD5 = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --------------------------------------------------------------------------- 16.2 taking over another team's user

@pytest.fixture
def bob(world, settings) -> User:
    """The admin of team B, who signs in to the admin with his own password."""
    settings.PASSWORD_HASHERS = MD5
    user = world.users["outsider"]
    user.set_password(OLD_PASSWORD)
    user.is_staff = True
    user.save()
    return user


def test_16_2_a_team_admin_cannot_take_over_a_user_of_another_team(world, bob):
    admin_a = Api(world.keys["teamadmin"])
    added = admin_a.post("/team/member_add", {"team_id": world.team_a.public_id, "member": {"user_id": "outsider"}})
    assert added.status_code == 403 and "proxy admin" in error_of(added)["message"]
    assert not TeamMembership.objects.filter(team=world.team_a, user=bob).exists()
    changed = admin_a.post("/user/update", {"user_id": "outsider", "password": NEW_PASSWORD})
    assert changed.status_code == 404
    login = Client().post("/admin/login/?next=/admin/", {"username": "outsider", "password": NEW_PASSWORD})
    assert login.status_code == 200 and "_auth_user_id" not in login.client.session
    assert User.objects.get(pk=bob.pk).check_password(OLD_PASSWORD)


@pytest.mark.parametrize("change", [{"password": NEW_PASSWORD}, {"user_email": "mine@evil.example"},
                                    {"user_role": "team_admin"}])
def test_16_2_a_team_admin_cannot_change_a_members_credentials_email_or_role(world, change):
    response = Api(world.keys["teamadmin"]).post("/user/update", {"user_id": "member", **change})
    assert response.status_code == 403 and "proxy admin" in error_of(response)["message"]
    member = User.objects.get(username="member")
    assert (member.email, member.role, member.has_usable_password()) == ("member@example.com", "internal_user",
                                                                        False)


def test_16_2_a_user_changes_their_own_password_and_email(world, settings):
    settings.PASSWORD_HASHERS = MD5
    response = Api(world.keys["member"]).post("/user/update", {"user_id": "member", "password": NEW_PASSWORD,
                                                               "user_email": "member@new.example"})
    assert response.status_code == 200
    member = User.objects.get(username="member")
    assert member.check_password(NEW_PASSWORD) and member.email == "member@new.example"


def test_16_2_a_team_admin_cannot_set_a_members_password_in_the_admin(world, settings):
    settings.PASSWORD_HASHERS = MD5
    client = Client()
    client.force_login(world.users["teamadmin"])
    member = world.users["member"]
    response = client.post(f"/admin/accounts/user/{member.pk}/password/", {"password1": NEW_PASSWORD,
                                                                           "password2": NEW_PASSWORD})
    assert response.status_code == 403
    assert not User.objects.get(pk=member.pk).check_password(NEW_PASSWORD)


def test_16_2_an_organization_admin_of_all_their_teams_may_add_them(world, master_key):
    """Adding someone who belongs elsewhere is fine for whoever already runs all of it."""
    Api(master_key).post("/team/member_add", {"team_id": world.team_a.public_id, "member": {"user_id": "fresh"}})
    team_c = Api(master_key).post("/team/new", {"team_alias": "team-c", "organization_id": world.org1.public_id}).json()
    response = Api(world.keys["orgadmin"]).post("/team/member_add", {"team_id": team_c["team_id"],
                                                                     "member": {"user_id": "fresh"}})
    assert response.status_code == 200
    assert TeamMembership.objects.filter(team__public_id=team_c["team_id"], user__username="fresh").exists()


# --------------------------------------------------------------------------- 16.3 keys outside the team

@pytest.fixture
def narrow_team_a(world, master_key):
    """Team A as the audit set it: only gpt-4o-mini, $5."""
    response = Api(master_key).post("/team/update", {"team_id": world.team_a.public_id, "models": ["gpt-4o-mini"],
                                                     "max_budget": 5})
    assert response.status_code == 200
    VirtualKey.objects.filter(team=world.team_a).update(max_budget=None)
    return world.team_a


def test_16_3_user_new_into_a_team_gives_a_key_of_that_team(world, narrow_team_a):
    response = Api(world.keys["teamadmin"]).post("/user/new", {"user_id": "newbie", "teams": [narrow_team_a.public_id]})
    assert response.status_code == 200 and response.json()["key"].startswith("sk-")
    key = VirtualKey.objects.get(user__username="newbie")
    assert key.team_id == narrow_team_a.pk


def test_16_3_a_key_for_a_member_cannot_leave_the_teams_models_and_budget(world, narrow_team_a):
    response = Api(world.keys["teamadmin"]).post("/key/generate", {
        "user_id": "member", "models": ["gpt-4o", "claude"], "max_budget": 100000})
    assert response.status_code == 400 and "team-a" in error_of(response)["message"]
    assert not VirtualKey.objects.filter(user__username="member", allowed_models__contains="claude").exists()


def test_16_3_a_key_for_a_member_without_team_id_is_a_key_of_the_team(world, narrow_team_a):
    response = Api(world.keys["teamadmin"]).post("/key/generate", {"user_id": "member"})
    assert response.status_code == 200
    assert (response.json()["user_id"], response.json()["team_id"]) == ("member", narrow_team_a.public_id)


def test_16_3_a_key_for_someone_outside_the_scope_says_what_to_do(world):
    response = Api(world.keys["teamadmin"]).post("/key/generate", {"user_id": "teamadmin", "team_id": None})
    assert response.status_code == 200  # one's own personal key stays possible
    TeamMembership.objects.create(team=Team.objects.create(name="team-d", organization=world.org1),
                                  user=world.users["member"])
    response = Api(world.keys["orgadmin"]).post("/key/generate", {"user_id": "member"})
    assert response.status_code == 400 and "give team_id" in error_of(response)["message"]


@pytest.mark.django_db(transaction=True)
def test_16_3_spend_of_a_key_issued_to_a_member_charges_the_team(gateway, master_key):
    from billing.models import SpendLog

    admin = Api(master_key)
    team = admin.post("/team/new", {"team_alias": "spenders", "models": ["mock-gpt"], "max_budget": 5}).json()
    admin.post("/user/new", {"user_id": "lead", "user_role": "team_admin", "auto_create_key": False})
    admin.post("/team/member_add", {"team_id": team["team_id"], "member": {"user_id": "lead", "role": "admin"}})
    admin.post("/user/new", {"user_id": "worker", "teams": [team["team_id"]], "auto_create_key": False})
    lead_plain = admin.post("/key/generate", {"user_id": "lead"}).json()["key"]

    issued = Api(lead_plain).post("/key/generate", {"user_id": "worker"})
    assert issued.status_code == 200
    worker_key = issued.json()["key"]
    assert chat_status(gateway.url, worker_key, "mock-claude") == 401   # outside the team's models (LiteLLM's 401)
    assert chat_status(gateway.url, worker_key, "mock-gpt") == 200
    token = issued.json()["token"]
    deadline = time.monotonic() + 20
    while not SpendLog.objects.filter(key__key_hash=token).exists() and time.monotonic() < deadline:
        call_command("process_spend")
        time.sleep(0.1)
    row = SpendLog.objects.get(key__key_hash=token)
    assert row.team.public_id == team["team_id"]


# --------------------------------------------------------------------------- 16.5 owners lifting their own limits

@pytest.fixture
def alices_key(world, master_key) -> str:
    """A personal key of member ("alice"), limited by a proxy admin to $1, gpt-4o-mini, 5 rpm."""
    response = Api(master_key).post("/key/generate", {"user_id": "member", "max_budget": 1,
                                                      "models": ["gpt-4o-mini"], "rpm_limit": 5})
    return response.json()["key"]


def test_16_5_an_owner_cannot_lift_the_limits_an_admin_put_on_their_key(world, alices_key):
    response = Api(world.keys["member"]).post("/key/update", {"key": alices_key, "max_budget": 1000000,
                                                              "models": [], "rpm_limit": None})
    assert response.status_code == 403
    message = error_of(response)["message"]
    assert "only tighten" in message and "proxy admin" in message
    key = Api(world.keys["member"]).get("/key/info", key=alices_key).json()["info"]
    assert (key["max_budget"], key["models"], key["rpm_limit"]) == (1.0, ["gpt-4o-mini"], 5)


def test_16_5_an_owner_cannot_unblock_a_key_an_admin_blocked(world, alices_key, master_key):
    assert Api(master_key).post("/key/block", {"key": alices_key}).status_code == 200
    response = Api(world.keys["member"]).post("/key/unblock", {"key": alices_key})
    assert response.status_code == 403
    assert Api(world.keys["member"]).get("/key/info", key=alices_key).json()["info"]["blocked"] is True


def test_16_5_an_owner_tightens_and_blocks_their_own_key(world, alices_key):
    member = Api(world.keys["member"])
    tightened = member.post("/key/update", {"key": alices_key, "max_budget": 0.5, "models": [], "rpm_limit": 2})
    assert tightened.status_code == 403  # models [] means every model: that loosens
    tightened = member.post("/key/update", {"key": alices_key, "max_budget": 0.5, "rpm_limit": 2, "tpm_limit": 100})
    assert tightened.status_code == 200
    assert (tightened.json()["max_budget"], tightened.json()["rpm_limit"]) == (0.5, 2)
    assert member.post("/key/block", {"key": alices_key}).json()["blocked"] is True


def test_16_5_a_team_admin_loosens_a_members_team_key(world, master_key):
    issued = Api(master_key).post("/key/generate", {"user_id": "member", "team_id": world.team_a.public_id,
                                                    "max_budget": 1}).json()["key"]
    assert Api(world.keys["member"]).post("/key/update", {"key": issued, "max_budget": 10}).status_code == 403
    assert Api(world.keys["teamadmin"]).post("/key/update", {"key": issued, "max_budget": 10}).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_16_5_the_model_an_owner_tried_to_allow_still_does_not_answer(gateway, world, master_key):
    limited = Api(master_key).post("/key/generate", {"user_id": "member", "max_budget": 1, "models": ["mock-gpt"],
                                                     "rpm_limit": 5}).json()["key"]
    refused = Api(world.keys["member"]).post("/key/update", {"key": limited, "max_budget": 1000000, "models": [],
                                                             "rpm_limit": None})
    assert refused.status_code == 403
    assert chat_status(gateway.url, limited, "mock-claude") == 401   # not allowed (LiteLLM's 401)
    assert chat_status(gateway.url, limited, "mock-gpt") == 200


# --------------------------------------------------------------------------- 16.12 probing for teams

MISSING = 987654

PROBES = [
    ("GET", "/team/info", lambda t: {"team_id": t}),
    ("POST", "/team/update", lambda t: {"team_id": t, "team_alias": "x"}),
    ("POST", "/team/member_add", lambda t: {"team_id": t, "member": {"user_id": "member"}}),
    ("POST", "/team/member_delete", lambda t: {"team_id": t, "user_id": "member"}),
    ("POST", "/team/delete", lambda t: {"team_ids": [t]}),
    ("GET", "/key/list", lambda t: {"team_id": t}),
    ("POST", "/key/generate", lambda t: {"team_id": t}),
    ("POST", "/user/new", lambda t: {"user_id": "probe", "teams": [t]}),
    ("POST", "/project/new", lambda t: {"project_alias": "probe", "team_id": t}),
    ("GET", "/project/list", lambda t: {"team_id": t}),
    ("GET", "/spend/logs", lambda t: {"team_id": t}),
]
ORG_PROBES = [
    ("GET", "/organization/info", lambda o: {"organization_id": o}),
    ("POST", "/organization/member_add", lambda o: {"organization_id": o, "member": {"user_id": "member"}}),
    ("POST", "/team/new", lambda o: {"team_alias": "probe", "organization_id": o}),
    ("GET", "/team/list", lambda o: {"organization_id": o}),
    ("POST", "/key/generate", lambda o: {"organization_id": o}),
    ("POST", "/user/new", lambda o: {"user_id": "probe", "organization_id": o}),
    ("POST", "/project/new", lambda o: {"project_alias": "probe", "organization_id": o}),
]
PROJECT_PROBES = [
    ("GET", "/project/info", lambda p: {"project_id": p}),
    ("POST", "/project/update", lambda p: {"project_id": p, "max_budget": 1}),
    ("POST", "/project/delete", lambda p: {"project_ids": [p]}),
    ("POST", "/key/generate", lambda p: {"project_id": p}),
    ("GET", "/key/list", lambda p: {"project_id": p}),
]


def _probe(api: Api, method: str, path: str, body: dict):
    response = api.post(path, body) if method == "POST" else api.get(path, **body)
    return response.status_code, response.content.decode()


def _same_answer(api: Api, method: str, path: str, body_for, existing: int | str) -> None:
    status_existing, text_existing = _probe(api, method, path, body_for(existing))
    status_missing, text_missing = _probe(api, method, path, body_for(MISSING))
    assert status_existing == status_missing == 404, (status_existing, text_existing)
    assert (re.sub(rf"\b{re.escape(str(existing))}\b", "ID", text_existing)
            == re.sub(rf"\b{MISSING}\b", "ID", text_missing))


@pytest.mark.parametrize("method, path, body_for", PROBES, ids=[f"{m} {p}" for m, p, _ in PROBES])
def test_16_12_another_teams_existence_cannot_be_probed(world, method, path, body_for):
    _same_answer(Api(world.keys["teamadmin"]), method, path, body_for, world.team_b.public_id)


@pytest.mark.parametrize("method, path, body_for", ORG_PROBES, ids=[f"{m} {p}" for m, p, _ in ORG_PROBES])
def test_16_12_another_organizations_existence_cannot_be_probed(world, method, path, body_for):
    _same_answer(Api(world.keys["orgadmin"]), method, path, body_for, world.org2.public_id)


@pytest.mark.parametrize("method, path, body_for", PROJECT_PROBES, ids=[f"{m} {p}" for m, p, _ in PROJECT_PROBES])
def test_16_12_another_teams_project_cannot_be_probed(world, master_key, method, path, body_for):
    project = Api(master_key).post("/project/new", {"project_alias": "b-project", "team_id": world.team_b.public_id})
    _same_answer(Api(world.keys["teamadmin"]), method, path, body_for, int(project.json()["project_id"]))


@pytest.mark.parametrize("path", ["/key/info", "/key/update", "/key/block", "/key/unblock", "/key/regenerate",
                                  "/key/delete"])
def test_16_12_another_teams_key_cannot_be_probed(world, path):
    existing, missing = world.team_b_plain, "sk-" + "x" * 40
    api = Api(world.keys["teamadmin"])
    def body(key):
        return {"keys": [key]} if path == "/key/delete" else {"key": key}
    answers = [_probe(api, "GET" if path == "/key/info" else "POST", path, body(k)) for k in (existing, missing)]
    assert answers[0][0] == answers[1][0] == 404
    assert answers[0][1] == answers[1][1]
