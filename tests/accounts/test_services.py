"""Account services on every database: keys hashed, limits nested, audit written with the change."""
from __future__ import annotations

from decimal import Decimal

import pytest

from accounts import services
from accounts.keys import key_digest
from accounts.models import AuditEntry, Team, VirtualKey
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
