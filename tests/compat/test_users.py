"""/user/new without user_id, and unknown user_ids on /key/generate and /user/update (proxy admins only)."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

from accounts.models import User


def test_user_new_without_user_id_generates_one(admin):
    created = admin.ok("POST", "/user/new", {"user_email": "someone@example.com", "models": ["mock-gpt"]})
    assert str(uuid.UUID(created["user_id"])) == created["user_id"] and created["key"].startswith("sk-")
    info = admin.ok("GET", "/user/info", {"user_id": created["user_id"]})
    assert info["user_info"]["user_email"] == "someone@example.com"


def test_an_unknown_user_id_on_key_generate_creates_the_user_for_a_proxy_admin(admin):
    key = admin.ok("POST", "/key/generate", {"user_id": "ishaan-smart"})
    assert key["user_id"] == "ishaan-smart"
    user = User.objects.get(username="ishaan-smart")
    assert user.role == "internal_user" and user.max_budget is None and not user.is_staff


def test_an_unknown_user_id_on_user_update_creates_the_user_for_a_proxy_admin(admin):
    updated = admin.ok("POST", "/user/update", {"user_id": "litellm-proxy-budget", "max_budget": 10})
    assert updated["user_id"] == "litellm-proxy-budget" and updated["max_budget"] == 10


def test_below_proxy_admin_an_unknown_user_id_is_a_404_and_creates_nobody(admin, as_key):
    team = admin.ok("POST", "/team/new", {})
    admin.ok("POST", "/user/new", {"user_id": "lead", "user_role": "team_admin", "auto_create_key": False})
    admin.ok("POST", "/team/member_add", {"team_id": team["team_id"], "member": {"user_id": "lead", "role": "admin"}})
    lead = as_key(admin.ok("POST", "/key/generate", {"user_id": "lead"})["key"])
    for path, body in (("/key/generate", {"user_id": "ghost", "team_id": team["team_id"]}),
                       ("/user/update", {"user_id": "ghost", "metadata": {"a": 1}})):
        response = lead.post(path, body)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["param"] == "user_id"
    assert not User.objects.filter(username="ghost").exists()


def test_concurrent_keys_for_one_new_user_create_it_once(admin):
    user_id = f"burst-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: admin.post("/key/generate", {"user_id": user_id}), range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers if a.status_code != 200]
    assert User.objects.filter(username=user_id).count() == 1
    assert {a.json()["user_id"] for a in answers} == {user_id}
