"""team_id and organization_id: the client's string or a generated UUID; aliases optional and repeatable."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from accounts.models import Organization, Team


def test_a_client_chosen_team_id_names_the_team_everywhere(admin):
    team_id = f"test_team_{uuid.uuid4().hex[:8]}"
    created = admin.ok("POST", "/team/new", {"team_id": team_id, "team_alias": "research"})
    assert created["team_id"] == team_id
    key = admin.ok("POST", "/key/generate", {"team_id": team_id})
    assert key["team_id"] == team_id
    info = admin.ok("GET", "/team/info", {"team_id": team_id})
    assert info["team_id"] == team_id and [k["token"] for k in info["keys"]] == [key["token"]]
    assert team_id in [t["team_id"] for t in admin.ok("GET", "/team/list")]
    assert admin.ok("POST", "/team/delete", {"team_ids": [team_id]})["deleted_teams"] == [team_id]
    assert admin.get("/team/info", team_id=team_id).status_code == 404


def test_without_team_id_one_is_generated_and_the_alias_is_optional(admin):
    created = admin.ok("POST", "/team/new", {})
    assert str(uuid.UUID(created["team_id"])) == created["team_id"] and created["team_alias"] is None
    assert Team.objects.get(public_id=created["team_id"]).name == ""


def test_team_aliases_may_repeat(admin):
    first = admin.ok("POST", "/team/new", {"team_alias": "my-new-team"})
    second = admin.ok("POST", "/team/new", {"team_alias": "my-new-team"})
    assert first["team_id"] != second["team_id"]


def test_a_taken_team_id_is_a_400_naming_it(admin):
    admin.ok("POST", "/team/new", {"team_id": "taken-team"})
    again = admin.post("/team/new", {"team_id": "taken-team", "team_alias": "other"})
    assert again.status_code == 400 and again.json()["error"]["param"] == "team_id"
    assert Team.objects.filter(public_id="taken-team").count() == 1


def test_organizations_take_the_clients_id_and_repeat_aliases(admin):
    alias = f"Organization: {uuid.uuid4()}"
    chosen = admin.ok("POST", "/organization/new", {"organization_id": "acme-eu", "organization_alias": alias})
    generated = admin.ok("POST", "/organization/new", {"organization_alias": alias, "max_budget": 7})
    assert chosen["organization_id"] == "acme-eu" and uuid.UUID(generated["organization_id"])
    assert Organization.objects.filter(name=alias).count() == 2
    team = admin.ok("POST", "/team/new", {"organization_id": "acme-eu"})
    assert team["organization_id"] == "acme-eu" and team["team_alias"] is None
    listed = {o["organization_id"]: o for o in admin.ok("GET", "/organization/list")}
    assert listed[generated["organization_id"]]["litellm_budget_table"]["max_budget"] == 7
    assert listed["acme-eu"]["teams"] == [{"team_id": team["team_id"], "team_alias": None}]


def test_team_update_answers_under_data_too(admin):
    team = admin.ok("POST", "/team/new", {"team_alias": "before", "max_budget": 5})
    updated = admin.ok("POST", "/team/update", {"team_id": team["team_id"], "team_alias": "after"})
    assert updated["data"]["team_alias"] == "after" == updated["team_alias"]
    assert {k: v for k, v in updated["data"].items() if k not in ("team_alias", "updated_at")} == \
        {k: v for k, v in team.items() if k not in ("team_alias", "updated_at")}


def test_adding_a_member_twice_is_a_400(admin):
    team = admin.ok("POST", "/team/new", {})
    member = {"team_id": team["team_id"], "member": {"role": "user", "user_id": "twice@example.com"}}
    assert len(admin.ok("POST", "/team/member_add", member)["members_with_roles"]) == 1
    again = admin.post("/team/member_add", member)
    assert again.status_code == 400 and "already a member" in again.json()["error"]["message"]


def test_removing_someone_who_is_not_a_member_is_a_400(admin):
    team = admin.ok("POST", "/team/new", {})
    admin.ok("POST", "/user/new", {"user_id": "elsewhere"})
    for who in ({"user_id": "elsewhere"}, {"user_id": "nobody-at-all"}, {"user_email": "nobody@example.com"}):
        response = admin.post("/team/member_delete", {"team_id": team["team_id"], **who})
        assert response.status_code == 400, who


def test_parallel_new_teams_naming_one_new_member_all_succeed(admin):
    """LiteLLM's scripts create teams in parallel with the same (not yet existing) member: it is created once."""
    member = f"member-{uuid.uuid4().hex[:8]}"
    body = {"team_alias": "my-new-team", "members_with_roles": [{"role": "user", "user_id": member}]}
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: admin.post("/team/new", body), range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers if a.status_code != 200]
    assert Team.objects.filter(memberships__user__username=member).count() == 6
