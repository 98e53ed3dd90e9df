"""The memory management API and who may use it (accounts.policy.memory): list, read and delete
summaries; forget one end user everywhere the caller may; retention."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.accounts.api.conftest import Api, admin_api, error_of, master_key, world  # noqa: F401 - fixtures

pytestmark = pytest.mark.db_matrix


def _summary(*, scope: str, end_user: str, team=None, user=None, text: str = "remembered", days: int = 30):
    from accounts.keys import secret_encrypt
    from memory.models import MemorySummary
    from memory.services import subject_ids

    subject = f"end_user:{end_user}"
    now = timezone.now()
    return MemorySummary.objects.create(
        subject_id=subject_ids(pairs=[(scope, subject)])[(scope, subject)], session_id=f"s-{uuid.uuid4().hex[:12]}",
        encrypted_summary=secret_encrypt(text), model="m", request_id="r", session_started_at=now,
        session_ended_at=now, expires_at=now + timedelta(days=days), team_id=team.pk if team else None,
        organization_id=team.organization_id if team else None, user_id=user.pk if user else None)


@pytest.fixture
def remembered(world):
    return {
        "a": _summary(scope=f"team:{world.team_a.pk}", end_user="alice", team=world.team_a, text="team a's"),
        "b": _summary(scope=f"team:{world.team_b.pk}", end_user="alice", team=world.team_b, text="team b's"),
        "mine": _summary(scope=f"team:{world.team_a.pk}", end_user="carol", team=world.team_a,
                         user=world.users["member"], text="the member's"),
    }


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["data"]}


def test_proxy_admin_lists_reads_and_deletes_summaries(admin_api, remembered):
    assert _ids(admin_api.get("/memory/summaries")) == {row.pk for row in remembered.values()}
    assert _ids(admin_api.get("/memory/summaries", end_user="alice")) == {remembered["a"].pk, remembered["b"].pk}
    detail = admin_api.get(f"/memory/summaries/{remembered['a'].pk}").json()
    assert (detail["summary"], detail["end_user"], detail["scope"]) == ("team a's", "alice",
                                                                        remembered["a"].subject.scope)
    assert "summary" not in admin_api.get("/memory/summaries").json()["data"][0]   # text only one at a time
    assert admin_api.client.delete(f"/memory/summaries/{remembered['a'].pk}",
                                   **admin_api._headers()).status_code == 200
    assert admin_api.get(f"/memory/summaries/{remembered['a'].pk}").status_code == 404


def test_team_admin_sees_and_deletes_only_their_teams_memory(world, remembered):
    from memory.models import MemorySummary

    team_admin = Api(world.keys["teamadmin"])
    assert _ids(team_admin.get("/memory/summaries")) == {remembered["a"].pk, remembered["mine"].pk}
    other = remembered["b"].pk
    assert error_of(team_admin.get(f"/memory/summaries/{other}"))["type"] == "not_found_error"
    assert team_admin.client.delete(f"/memory/summaries/{other}", **team_admin._headers()).status_code == 404
    assert MemorySummary.objects.filter(pk=other).exists()


def test_a_user_sees_only_what_their_own_keys_remembered(world, remembered):
    member = Api(world.keys["member"])
    assert _ids(member.get("/memory/summaries")) == {remembered["mine"].pk}
    assert member.get(f"/memory/summaries/{remembered['a'].pk}").status_code == 404
    assert _ids(Api(world.keys["outsider"]).get("/memory/summaries")) == {remembered["b"].pk}


def test_a_key_without_a_user_and_no_key_are_refused(world, remembered):
    assert Api(world.team_a_plain).get("/memory/summaries").status_code in (401, 403)
    assert Api(None).get("/memory/summaries").status_code == 401


def test_forgetting_an_end_user_deletes_their_memory_in_every_scope(admin_api, remembered):
    from memory.models import MemorySubject, MemorySummary

    response = admin_api.post("/memory/end_user/delete", {"end_user": "alice"})
    assert response.status_code == 200, response.content
    assert response.json()["deleted_summaries"] == 2
    assert not MemorySummary.objects.filter(subject__subject="end_user:alice").exists()
    assert not MemorySubject.objects.filter(subject="end_user:alice").exists()
    assert MemorySummary.objects.filter(pk=remembered["mine"].pk).exists()   # carol's stays


def test_a_team_admin_forgets_an_end_user_only_within_their_teams(world, remembered):
    from memory.models import MemorySummary

    response = Api(world.keys["teamadmin"]).post("/memory/end_user/delete", {"end_user": "alice"})
    assert response.status_code == 200 and response.json()["deleted_summaries"] == 1
    assert not MemorySummary.objects.filter(pk=remembered["a"].pk).exists()
    assert MemorySummary.objects.filter(pk=remembered["b"].pk).exists()


def test_a_member_may_not_make_a_privacy_request(world, remembered):
    from memory.models import MemorySummary

    response = Api(world.keys["member"]).post("/memory/end_user/delete", {"end_user": "alice"})
    assert response.status_code == 403 and error_of(response)["type"] == "permission_error"
    assert MemorySummary.objects.count() == 3


def test_an_empty_end_user_is_a_clear_400(admin_api, remembered):
    response = admin_api.post("/memory/end_user/delete", {"end_user": ""})
    assert response.status_code == 400 and error_of(response)["param"] == "end_user"


def test_retention_deletes_expired_summaries(world):
    from memory.models import MemorySummary
    from memory.services import memory_purge

    old = _summary(scope="key:1", end_user="dave", days=1)
    fresh = _summary(scope="key:1", end_user="erin", days=30)
    assert memory_purge(now=timezone.now() + timedelta(days=2)) == 1
    assert list(MemorySummary.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert old.pk != fresh.pk
