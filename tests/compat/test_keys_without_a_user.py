"""A key that belongs to no user reads about itself: /key/info, its team's /team/info, its own /model/info."""
from __future__ import annotations


def test_a_key_with_no_user_reads_its_own_key_info(admin, as_key):
    key = admin.ok("POST", "/key/generate", {"models": ["mock-gpt"], "max_budget": 3})
    info = as_key(key["key"]).ok("GET", "/key/info")
    assert info["key"] == key["token"] and info["info"]["max_budget"] == 3 and info["info"]["user_id"] is None
    assert as_key(key["key"]).ok("GET", "/key/info", {"key": key["key"]})["info"]["token"] == key["token"]
    other = admin.ok("POST", "/key/generate", {})
    assert as_key(key["key"]).get("/key/info", key=other["key"]).status_code == 404


def test_a_team_key_reads_its_team_and_only_itself_among_the_keys(admin, as_key):
    team = admin.ok("POST", "/team/new", {"team_id": "keyed-team"})
    mine = admin.ok("POST", "/key/generate", {"team_id": "keyed-team"})
    admin.ok("POST", "/key/generate", {"team_id": "keyed-team"})
    info = as_key(mine["key"]).ok("GET", "/team/info", {"team_id": team["team_id"]})
    assert [k["token"] for k in info["keys"]] == [mine["token"]]
    other = admin.ok("POST", "/team/new", {})
    assert as_key(mine["key"]).get("/team/info", team_id=other["team_id"]).status_code == 404
    assert as_key(admin.ok("POST", "/key/generate", {})["key"]).get("/team/info",
                                                                     team_id="keyed-team").status_code == 404


def test_model_info_for_a_key_with_no_user_lists_its_models_without_upstream_details(admin, as_key):
    key = admin.ok("POST", "/key/generate", {"models": ["mock-gpt"]})["key"]
    response = as_key(key).get("/model/info")
    assert response.status_code == 200
    rows = response.json()["data"]
    assert [r["model_name"] for r in rows] == ["mock-gpt"]
    assert rows[0]["litellm_params"] == {"model": "openai/mock-gpt"}
    assert "sk-upstream" not in response.text and "api_base" not in response.text


def test_a_key_with_no_user_still_may_not_manage_anything(admin, as_key):
    key = as_key(admin.ok("POST", "/key/generate", {})["key"])
    for path, body in (("/key/generate", {}), ("/team/new", {}), ("/user/new", {})):
        assert key.post(path, body).status_code == 403, path
    assert key.get("/key/list").status_code == 403
