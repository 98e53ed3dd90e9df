"""The memory admin pages: summaries read (decrypted) and deleted by whom the policy lets; the memory
setting on projects, checked by the same services as the API."""
from __future__ import annotations

import pytest
from django.test import Client

from accounts import services
from accounts.models import Role, TeamMembership, User
from accounts.policy import Actor
from llmur.core.errors import LlmurError
from tests.memory.test_api import _summary

BY = Actor.system("test")
PASSWORD = "correct horse battery staple"
pytestmark = pytest.mark.db_matrix


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_proxy_admin_reads_a_summary_decrypted_and_deletes_it(db):
    from memory.models import MemorySummary

    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    row = _summary(scope="key:1", end_user="alice", text="prefers tea")
    client = _login(root)
    page = client.get(f"/admin/memory/memorysummary/{row.pk}/change/")
    assert page.status_code == 200 and b"prefers tea" in page.content and b"alice" in page.content
    assert b"prefers tea" not in client.get("/admin/memory/memorysummary/").content   # text only on its page
    client.post(f"/admin/memory/memorysummary/{row.pk}/delete/", {"post": "yes"})
    assert not MemorySummary.objects.filter(pk=row.pk).exists()


def test_a_team_admin_sees_only_their_teams_summaries(db):
    team_a = services.team_create(by=BY, name="a")
    team_b = services.team_create(by=BY, name="b")
    admin_a = services.user_create(by=BY, username="admin-a", role=Role.TEAM_ADMIN, is_staff=True)
    TeamMembership.objects.create(team=team_a, user=admin_a, role=TeamMembership.TeamRole.ADMIN)
    mine = _summary(scope=f"team:{team_a.pk}", end_user="alice", team=team_a, text="team a note")
    theirs = _summary(scope=f"team:{team_b.pk}", end_user="alice", team=team_b, text="team b note")
    client = _login(admin_a)
    listing = client.get("/admin/memory/memorysummary/")
    assert listing.status_code == 200
    assert f"/memorysummary/{mine.pk}/change/".encode() in listing.content
    assert f"/memorysummary/{theirs.pk}/change/".encode() not in listing.content
    assert client.get(f"/admin/memory/memorysummary/{theirs.pk}/change/").status_code in (302, 404)


def test_the_memory_setting_is_checked_like_every_other_field(db):
    team = services.team_create(by=BY, name="t", memory={"enabled": True, "idle_minutes": 5})
    assert team.memory == {"enabled": True, "idle_minutes": 5}
    for bad in ({"enabled": "yes"}, {"idle_minutes": 0}, {"colour": "red"}, ["enabled"]):
        with pytest.raises(LlmurError) as caught:
            services.team_update(by=BY, team=team, memory=bad)
        assert caught.value.param == "memory"
