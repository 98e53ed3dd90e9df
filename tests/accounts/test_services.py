"""Account services on every database: keys hashed, limits nested, audit written with the change."""
from __future__ import annotations

from decimal import Decimal

import pytest

from accounts import services
from accounts.keys import key_digest
from accounts.models import AuditEntry, Team, TeamMembership, User, VirtualKey
from accounts.policy import Actor
from llmur.core.errors import LlmurError

pytestmark = [pytest.mark.db_matrix, pytest.mark.django_db]
BY = Actor.system("test")


def test_key_create_stores_the_digest_and_display_only():
    key, plaintext = services.key_create(by=BY, key_alias="k", models="gpt-4o, gpt-4o-mini", max_budget="2.50",
                                         budget_duration="1d", rpm_limit=5)
    key.refresh_from_db()
    assert key.key_hash == key_digest(plaintext) and key.display == f"sk-…{plaintext[-4:]}"
    assert key.allowed_models == ["gpt-4o", "gpt-4o-mini"] and key.max_budget == Decimal("2.5")
    assert key.budget_reset_at is not None
    assert not VirtualKey.objects.filter(key_alias=plaintext).exists()
    assert AuditEntry.objects.get().after["key_hash"] == "***"


def test_custom_key_is_accepted_once():
    services.key_create(by=BY, key="sk-my-own-custom-key-123")
    with pytest.raises(LlmurError) as exc:
        services.key_create(by=BY, key="sk-my-own-custom-key-123")
    assert exc.value.status == 400 and exc.value.param == "key"


def test_nested_limits_are_enforced_down_the_hierarchy():
    org = services.organization_create(by=BY, name="o", max_budget=100, models=["a", "b"], rpm_limit=60)
    with pytest.raises(LlmurError, match="max_budget"):
        services.team_create(by=BY, name="t", organization=org, max_budget=101)
    with pytest.raises(LlmurError, match="rpm_limit"):
        services.team_create(by=BY, name="t", organization=org, rpm_limit=61)
    team = services.team_create(by=BY, name="t", organization=org, max_budget=40, models=["a"])
    project = services.project_create(by=BY, name="p", team=team, max_budget=10)
    assert project.organization == org
    with pytest.raises(LlmurError, match="b"):
        services.key_create(by=BY, project=project, models=["b"])
    key, _ = services.key_create(by=BY, project=project, models=["a"], max_budget=10)
    assert (key.team, key.organization) == (team, org)
    with pytest.raises(LlmurError):
        services.key_update(by=BY, key=key, max_budget=11)


def test_block_and_unblock_are_audited_with_before_and_after():
    key, _ = services.key_create(by=BY)
    services.key_block(by=BY, key=key)
    services.key_unblock(by=BY, key=key)
    entries = AuditEntry.objects.order_by("id")
    assert [e.action for e in entries] == ["create", "block", "unblock"]
    assert entries[1].before["blocked"] is False and entries[1].after["blocked"] is True


def test_team_with_projects_cannot_be_deleted():
    team = services.team_create(by=BY, name="t")
    services.project_create(by=BY, name="p", team=team)
    with pytest.raises(LlmurError, match="projects"):
        services.team_delete(by=BY, team=team)
    assert Team.objects.filter(pk=team.pk).exists()


def test_user_onboard_is_one_transaction():
    """/user/new's user, memberships and first key: a key refused by the team leaves no user behind."""
    team = services.team_create(by=BY, name="capped", max_budget=50)
    with pytest.raises(LlmurError, match="max_budget"):
        services.user_onboard(by=BY, username="half-made", teams=[team], key={"max_budget": 1000})
    assert not User.objects.filter(username="half-made").exists()
    assert not TeamMembership.objects.filter(team=team).exists()


def test_user_onboard_puts_the_first_key_where_the_user_was_put():
    org = services.organization_create(by=BY, name="org")
    team = services.team_create(by=BY, name="t", organization=org)
    _, in_team, _ = services.user_onboard(by=BY, username="in-team", teams=[team], key={})
    _, in_org, _ = services.user_onboard(by=BY, username="in-org", teams=[], organization=org, key={})
    _, alone, _ = services.user_onboard(by=BY, username="alone", teams=[], key={})
    assert (in_team.team, in_team.organization) == (team, org)
    assert (in_org.team, in_org.organization) == (None, org)
    assert (alone.team, alone.organization, alone.user.username) == (None, None, "alone")


def test_an_owner_may_tighten_but_not_loosen_their_key_through_the_service():
    alice = services.user_create(by=BY, username="alice")
    key, _ = services.key_create(by=BY, user=alice, max_budget=1, models=["a"], rpm_limit=5)
    as_alice = Actor.for_user(alice, "api")
    services.key_update(by=as_alice, key=key, max_budget=Decimal("0.5"), rpm_limit=2)
    for loosening in ({"max_budget": 2}, {"models": []}, {"models": ["a", "b"]}, {"rpm_limit": None},
                      {"budget_duration": "1d"}, {"aliases": {"x": "b"}}):
        with pytest.raises(LlmurError) as refused:
            services.key_update(by=as_alice, key=key, **loosening)
        assert refused.value.status == 403, loosening
    with pytest.raises(LlmurError):
        services.key_unblock(by=as_alice, key=services.key_block(by=BY, key=key))
    key.refresh_from_db()
    assert (key.max_budget, key.allowed_models, key.rpm_limit, key.blocked) == (Decimal("0.5"), ["a"], 2, True)


def test_budget_duration_is_stored_without_surrounding_whitespace():
    team = services.team_create(by=BY, name="spaced", budget_duration=" 1d ")
    team.refresh_from_db()
    assert team.budget_duration == "1d" and team.budget_reset_at is not None
    with pytest.raises(LlmurError) as refused:
        services.team_update(by=BY, team=team, budget_duration="1 d")
    assert refused.value.param == "budget_duration" and "30s, 30m, 1h, 1d, 7d, 30d" in refused.value.message
