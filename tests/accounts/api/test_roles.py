"""Each role on each management route: what it may do, and that it can do nothing more.

The world (tests/accounts/api/conftest.py): org-1 holds team-a (budget 50, models gpt-4o/gpt-4o-mini); org-2
holds team-b. orgadmin administers org-1; teamadmin administers team-a; member and viewer belong to
team-a; outsider administers team-b. Everyone has a personal key.
"""
from __future__ import annotations

import pytest

from accounts.models import Team, TeamMembership, User, VirtualKey
from tests.accounts.api.conftest import Api, error_of

ROLES = ["proxy", "orgadmin", "teamadmin", "member", "viewer", "outsider"]


def as_(world, who: str) -> Api:
    return Api(world.keys[who])


# --------------------------------------------------------------------------- team keys

@pytest.mark.parametrize("who, allowed", [("proxy", True), ("orgadmin", True), ("teamadmin", True),
                                          ("member", False), ("viewer", False), ("outsider", False)])
def test_reading_team_a_shared_key(world, who, allowed):
    response = as_(world, who).get("/key/info", key=world.team_a_plain)
    assert response.status_code == (200 if allowed else 404)
    if not allowed:
        # Not found rather than forbidden: whether another team's key exists is not disclosed.
        assert error_of(response)["type"] == "not_found_error"


@pytest.mark.parametrize("who, status", [("proxy", 200), ("orgadmin", 200), ("teamadmin", 200),
                                         ("member", 404), ("viewer", 403), ("outsider", 404)])
def test_blocking_team_a_shared_key(world, who, status):
    assert as_(world, who).post("/key/block", {"key": world.team_a_plain}).status_code == status
    assert VirtualKey.objects.get(pk=world.team_a_key.pk).blocked is (status == 200)


@pytest.mark.parametrize("route, body", [
    ("/key/update", {"max_budget": 1}), ("/key/block", {}), ("/key/unblock", {}), ("/key/regenerate", {}),
])
def test_team_admin_cannot_touch_another_teams_key(world, route, body):
    response = as_(world, "teamadmin").post(route, {"key": world.team_b_plain, **body})
    assert response.status_code == 404
    key = VirtualKey.objects.get(pk=world.team_b_key.pk)
    assert key.blocked is False and key.max_budget is None and key.key_hash == world.team_b_key.key_hash


def test_team_admin_cannot_delete_or_list_another_teams_keys(world):
    admin = as_(world, "teamadmin")
    assert admin.post("/key/delete", {"keys": [world.team_b_plain]}).status_code == 404
    assert admin.post("/key/delete", {"key_aliases": ["team-b-key"]}).status_code == 404
    assert admin.get("/key/list", team_id=world.team_b.public_id).status_code == 404
    listed = admin.get("/key/list", return_full_object="true").json()["keys"]
    assert {k["key_alias"] for k in listed} == {"teamadmin-own", "team-a-key"}
    assert VirtualKey.objects.filter(pk=world.team_b_key.pk).exists()
    info = admin.get("/team/info", team_id=world.team_b.public_id)
    assert info.status_code == 404


@pytest.mark.parametrize("who, status", [("proxy", 200), ("orgadmin", 200), ("teamadmin", 200),
                                         ("member", 404), ("viewer", 403), ("outsider", 404)])
def test_issuing_a_team_a_key_for_someone_else(world, who, status):
    # member: the viewer is not a person they may see; outsider: team A is not a team they may see.
    response = as_(world, who).post("/key/generate", {"team_id": world.team_a.public_id, "user_id": "viewer"})
    assert response.status_code == status


def test_member_may_issue_their_own_key_in_their_team_within_its_limits(world):
    member = as_(world, "member")
    response = member.post("/key/generate", {"team_id": world.team_a.public_id, "max_budget": 5})
    assert response.status_code == 200 and response.json()["user_id"] == "member"
    over = member.post("/key/generate", {"team_id": world.team_a.public_id, "max_budget": 51})
    assert over.status_code == 400 and error_of(over)["param"] == "max_budget"


def test_team_admin_key_budget_cannot_exceed_team_budget(world):
    response = as_(world, "teamadmin").post("/key/generate", {"team_id": world.team_a.public_id, "max_budget": 60})
    assert response.status_code == 400


# --------------------------------------------------------------------------- own keys

@pytest.mark.parametrize("who", ["member", "outsider", "teamadmin"])
def test_users_manage_their_own_keys(world, who):
    api = as_(world, who)
    created = api.post("/key/generate", {"key_alias": "mine"})
    assert created.status_code == 200 and created.json()["user_id"] == who
    assert api.post("/key/block", {"key": created.json()["key"]}).status_code == 200
    assert api.post("/key/delete", {"keys": [created.json()["key"]]}).status_code == 200


def test_viewer_reads_own_key_but_writes_nothing(world):
    viewer = as_(world, "viewer")
    assert viewer.get("/key/info").json()["info"]["key_alias"] == "viewer-own"
    assert viewer.get("/key/list").json()["total_count"] == 1
    for route, body in [("/key/generate", {}), ("/key/block", {"key": world.keys["viewer"]}),
                        ("/team/member_add", {"team_id": world.team_a.public_id, "member": {"user_id": "x"}}),
                        ("/user/update", {"user_id": "viewer", "user_email": "v@x.io"})]:
        response = viewer.post(route, body)
        assert response.status_code == 403, route
        assert "read-only" in error_of(response)["message"]


def test_users_cannot_read_each_others_personal_keys(world):
    assert as_(world, "member").get("/key/info", key=world.keys["outsider"]).status_code == 404
    assert as_(world, "outsider").get("/key/info", key=world.keys["member"]).status_code == 404


# --------------------------------------------------------------------------- users

@pytest.mark.parametrize("who, role, status", [
    ("proxy", "proxy_admin", 200), ("orgadmin", "org_admin", 200), ("orgadmin", "proxy_admin", 403),
    ("teamadmin", "internal_user", 200), ("teamadmin", "team_admin", 200), ("teamadmin", "org_admin", 403),
    ("member", "internal_user", 403), ("viewer", "internal_user", 403),
])
def test_creating_a_user_in_team_a_never_grants_more_than_held(world, who, role, status):
    response = as_(world, who).post("/user/new", {"user_id": "newbie", "user_role": role,
                                                  "teams": [world.team_a.public_id]})
    assert response.status_code == status
    assert User.objects.filter(username="newbie").exists() is (status == 200)


def test_team_admin_cannot_create_users_into_another_team(world):
    response = as_(world, "teamadmin").post("/user/new", {"user_id": "sneaky", "teams": [world.team_b.public_id]})
    # Another team answers like a missing one (issue 16.12).
    assert response.status_code == 404 and not User.objects.filter(username="sneaky").exists()


def test_user_info_is_scoped(world):
    assert as_(world, "member").get("/user/info").json()["user_id"] == "member"
    assert as_(world, "member").get("/user/info", user_id="outsider").status_code == 404
    assert as_(world, "teamadmin").get("/user/info", user_id="member").status_code == 200
    assert as_(world, "teamadmin").get("/user/info", user_id="outsider").status_code == 404
    users = {u["user_id"] for u in as_(world, "teamadmin").get("/user/list").json()["users"]}
    assert users == {"teamadmin", "member", "viewer"}


def test_only_proxy_admin_changes_budgets_and_deletes_users(world):
    assert as_(world, "teamadmin").post("/user/update", {"user_id": "member", "max_budget": 1000}).status_code == 403
    assert as_(world, "member").post("/user/update", {"user_id": "member", "user_role": "proxy_admin"}).status_code \
        == 403
    assert as_(world, "orgadmin").post("/user/delete", {"user_ids": ["member"]}).status_code == 403
    assert as_(world, "proxy").post("/user/update", {"user_id": "member", "max_budget": 7}).json()["max_budget"] == 7
    assert as_(world, "proxy").post("/user/delete", {"user_ids": ["member"]}).status_code == 200
    assert not User.objects.filter(username="member").exists()


# --------------------------------------------------------------------------- teams and organizations

@pytest.mark.parametrize("who, org, status", [
    ("proxy", None, 200), ("orgadmin", "org1", 200), ("orgadmin", "org2", 404), ("orgadmin", None, 403),
    ("teamadmin", "org1", 404), ("member", None, 403),
])
def test_creating_teams(world, who, org, status):
    body = {"team_alias": "new-team"}
    if org:
        body["organization_id"] = getattr(world, org).public_id
    assert as_(world, who).post("/team/new", body).status_code == status


def test_team_admin_manages_members_but_not_the_teams_own_budget(world):
    admin = as_(world, "teamadmin")
    added = admin.post("/team/member_add", {"team_id": world.team_a.public_id, "member": {"role": "user",
                                                                                 "user_id": "fresh"}})
    assert added.status_code == 200
    assert "fresh" in {m["user_id"] for m in added.json()["members_with_roles"]}
    assert admin.post("/team/member_delete", {"team_id": world.team_a.public_id, "user_id": "fresh"}).status_code == 200
    assert not TeamMembership.objects.filter(team=world.team_a, user__username="fresh").exists()
    assert admin.post("/team/update", {"team_id": world.team_a.public_id, "team_alias": "team-a2"}).status_code == 200
    raise_budget = admin.post("/team/update", {"team_id": world.team_a.public_id, "max_budget": 1000})
    assert raise_budget.status_code == 403
    assert Team.objects.get(pk=world.team_a.pk).max_budget == 50
    assert admin.post("/team/member_add", {"team_id": world.team_b.public_id,
                                           "member": {"user_id": "member"}}).status_code == 404


def test_org_admin_sets_team_budgets_within_the_organization(world):
    admin = as_(world, "orgadmin")
    assert admin.post("/team/update", {"team_id": world.team_a.public_id, "max_budget": 80}).status_code == 200
    over = admin.post("/team/update", {"team_id": world.team_a.public_id, "max_budget": 150})
    assert over.status_code == 400 and "org-1" in error_of(over)["message"]
    assert admin.post("/team/update", {"team_id": world.team_b.public_id, "max_budget": 1}).status_code == 404


def test_team_lists_are_scoped(world):
    names = lambda who: {t["team_alias"] for t in as_(world, who).get("/team/list").json()}  # noqa: E731
    assert names("proxy") == {"team-a", "team-b"}
    assert names("orgadmin") == {"team-a"}
    assert names("member") == {"team-a"}
    assert names("outsider") == {"team-b"}


@pytest.mark.parametrize("who, status", [("proxy", 200), ("orgadmin", 403), ("teamadmin", 403), ("member", 403)])
def test_only_proxy_admin_creates_organizations(world, who, status):
    assert as_(world, who).post("/organization/new", {"organization_alias": f"org-{who}"}).status_code == status


def test_organization_info_is_scoped(world):
    assert as_(world, "orgadmin").get("/organization/info", organization_id=world.org1.public_id).status_code == 200
    assert as_(world, "orgadmin").get("/organization/info", organization_id=world.org2.public_id).status_code == 404
    assert [o["organization_alias"] for o in as_(world, "orgadmin").get("/organization/list").json()] == ["org-1"]


# --------------------------------------------------------------------------- projects and models

@pytest.mark.parametrize("who, team, status", [
    ("proxy", "team_b", 200), ("orgadmin", "team_a", 200), ("teamadmin", "team_a", 200),
    ("teamadmin", "team_b", 404), ("member", "team_a", 403), ("viewer", "team_a", 403),
])
def test_creating_projects(world, who, team, status):
    response = as_(world, who).post("/project/new", {"project_alias": "p", "team_id": getattr(world, team).public_id})
    assert response.status_code == status


@pytest.mark.parametrize("who, status", [("proxy", 200), ("orgadmin", 403), ("teamadmin", 403), ("member", 403)])
def test_only_proxy_admin_adds_models(world, who, status):
    response = as_(world, who).post("/model/new", {"model_name": f"m-{who}",
                                                   "litellm_params": {"model": "openai/gpt-4o"}})
    assert response.status_code == status


def test_key_without_a_user_cannot_manage(world):
    response = Api(world.team_a_plain).get("/key/list")
    assert response.status_code == 403 and "no active user" in error_of(response)["message"]
