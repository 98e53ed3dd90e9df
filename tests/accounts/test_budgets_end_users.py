"""Shared budgets and end users: the services and their management routes (accounts.services.budgets, end_users)."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from accounts import services
from accounts.models import AuditEntry, Budget, EndUser, Team, VirtualKey
from accounts.policy import Actor
from tests.accounts.api.conftest import Api

BY = Actor.system("budget tests")
pytestmark = pytest.mark.django_db


def test_budget_new_sets_its_first_reset_one_period_after_creation(admin_api):
    answer = admin_api.post("/budget/new", {"budget_id": "daily", "budget_duration": "1d", "max_budget": 0.02})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    created = dt.datetime.fromisoformat(body["created_at"])
    reset = dt.datetime.fromisoformat(body["budget_reset_at"])
    assert abs((reset - created) - dt.timedelta(days=1)) < dt.timedelta(seconds=3)
    assert body["budget_id"] == "daily" and body["max_budget"] == 0.02


def test_budget_new_without_id_generates_one_and_a_repeated_id_is_400(admin_api):
    generated = admin_api.post("/budget/new", {"tpm_limit": 2}).json()["budget_id"]
    assert Budget.objects.get(budget_id=generated).tpm_limit == 2
    again = admin_api.post("/budget/new", {"budget_id": generated})
    assert again.status_code == 400 and "already exists" in again.json()["error"]["message"]


def test_budget_list_info_update_delete(admin_api):
    admin_api.post("/budget/new", {"budget_id": "b1", "max_budget": 1})
    admin_api.post("/budget/new", {"budget_id": "b2", "rpm_limit": 5})
    assert {b["budget_id"] for b in admin_api.get("/budget/list").json()} == {"b1", "b2"}
    assert [b["budget_id"] for b in admin_api.post("/budget/info", {"budgets": ["b2"]}).json()] == ["b2"]
    updated = admin_api.post("/budget/update", {"budget_id": "b1", "max_budget": 3}).json()
    assert updated["max_budget"] == 3
    assert admin_api.post("/budget/delete", {"id": "b1"}).status_code == 200
    assert admin_api.post("/budget/delete", {"id": "b1"}).status_code == 404
    assert not Budget.objects.filter(budget_id="b1").exists()


def test_budget_update_copies_its_limits_to_every_entity_that_references_it():
    budget = services.budget_create(by=BY, budget_id="tier", max_budget=5, tpm_limit=100)
    end_user = services.end_user_create(by=BY, user_id="cust-1", budget=budget)
    key, _ = services.key_create(by=BY, key_alias="k")
    services.budget_reference(by=BY, entity=key, budget=budget)
    assert (end_user.max_budget, end_user.tpm_limit) == (Decimal(5), 100)
    assert VirtualKey.objects.get(pk=key.pk).tpm_limit == 100

    services.budget_update(by=BY, budget=budget, max_budget=7, tpm_limit=50)

    assert EndUser.objects.values_list("max_budget", "tpm_limit").get(pk=end_user.pk) == (Decimal(7), 50)
    assert VirtualKey.objects.values_list("max_budget", "tpm_limit").get(pk=key.pk) == (Decimal(7), 50)


def test_a_budget_that_does_not_fit_a_referencing_key_changes_nothing():
    team = services.team_create(by=BY, name="small", max_budget=10)
    budget = services.budget_create(by=BY, budget_id="tier", max_budget=5)
    key, _ = services.key_create(by=BY, team=team)
    services.budget_reference(by=BY, entity=key, budget=budget)
    with pytest.raises(Exception) as refused:
        services.budget_update(by=BY, budget=budget, max_budget=20)
    assert refused.value.status == 400 and "does not fit key" in refused.value.message
    assert Budget.objects.get(pk=budget.pk).max_budget == 5
    assert VirtualKey.objects.get(pk=key.pk).max_budget == 5


def test_deleting_a_budget_leaves_its_limits_on_the_entities():
    budget = services.budget_create(by=BY, budget_id="tier", rpm_limit=3)
    services.end_user_create(by=BY, user_id="cust", budget=budget)
    services.budget_delete(by=BY, budget=budget)
    end_user = EndUser.objects.get(user_id="cust")
    assert end_user.budget is None and end_user.rpm_limit == 3


def test_end_user_new_info_update_delete_on_both_paths(admin_api):
    created = admin_api.post("/end_user/new", {"user_id": "ishaan3", "max_budget": 2, "alias": "Ishaan",
                                               "allowed_model_region": "eu", "default_model": None})
    assert created.status_code == 200, created.content
    assert created.json()["litellm_budget_table"]["max_budget"] == 2
    info = admin_api.get("/customer/info", end_user_id="ishaan3").json()
    assert (info["user_id"], info["alias"], info["spend"], info["blocked"]) == ("ishaan3", "Ishaan", 0.0, False)
    updated = admin_api.post("/customer/update", {"user_id": "ishaan3", "max_budget": 4, "blocked": True}).json()
    assert (updated["max_budget"], updated["blocked"]) == (4, True)
    assert [e["user_id"] for e in admin_api.get("/end_user/list").json()] == ["ishaan3"]
    deleted = admin_api.post("/customer/delete", {"user_ids": ["ishaan3"]})
    assert deleted.json()["deleted_customers"] == 1
    assert admin_api.get("/end_user/info", end_user_id="ishaan3").status_code == 404


def test_end_user_new_with_a_budget_id_takes_its_limits(admin_api):
    admin_api.post("/budget/new", {"budget_id": "free-tier", "tpm_limit": 2})
    body = admin_api.post("/end_user/new", {"user_id": "u1", "budget_id": "free-tier"}).json()
    assert (body["budget_id"], body["tpm_limit"]) == ("free-tier", 2)
    assert body["litellm_budget_table"]["budget_id"] == "free-tier"


def test_end_user_errors_name_what_to_fix(admin_api):
    admin_api.post("/end_user/new", {"user_id": "dup"})
    again = admin_api.post("/end_user/new", {"user_id": "dup"})
    assert again.status_code == 400 and "Customer already exists" in again.json()["error"]["message"]
    assert admin_api.post("/end_user/new", {"user_id": "x", "budget_id": "nope"}).status_code == 404
    assert admin_api.post("/end_user/new", {}).json()["error"]["param"] == "user_id"
    assert admin_api.post("/end_user/update", {"user_id": "ghost"}).status_code == 404
    assert admin_api.post("/end_user/delete", {"user_ids": ["dup", "ghost"]}).status_code == 404
    assert EndUser.objects.filter(user_id="dup").exists()


def test_block_creates_unknown_end_users_blocked_and_unblock_clears_it(admin_api):
    blocked = admin_api.post("/customer/block", {"user_ids": ["new-one"]}).json()
    assert blocked["blocked_users"][0]["blocked"] is True
    assert EndUser.objects.get(user_id="new-one").blocked
    admin_api.post("/end_user/unblock", {"user_ids": ["new-one"]})
    assert not EndUser.objects.get(user_id="new-one").blocked
    assert admin_api.post("/end_user/unblock", {"user_ids": ["never-seen"]}).status_code == 404
    assert AuditEntry.objects.filter(entity_type="enduser", action="unblock").count() == 1


def test_only_proxy_admins_manage_end_users_and_budgets(world):
    admin = Api(world.keys["orgadmin"])
    assert admin.post("/end_user/new", {"user_id": "c"}).status_code == 403
    assert admin.post("/budget/new", {"budget_id": "b"}).status_code == 403
    assert admin.get("/budget/list").status_code == 403
    assert not EndUser.objects.exists() and not Budget.objects.exists()
    assert Team.objects.filter(name="team-a").exists()


def test_keys_teams_and_organizations_take_a_shared_budget_by_budget_id(admin_api):
    admin_api.post("/budget/new", {"budget_id": "tier", "max_budget": 4, "rpm_limit": 9})
    org = admin_api.post("/organization/new", {"organization_alias": "o", "budget_id": "tier"}).json()
    team = admin_api.post("/team/new", {"team_alias": "t", "budget_id": "tier"}).json()
    key = admin_api.post("/key/generate", {"budget_id": "tier"}).json()
    for body in (org, team, key):
        assert (body["budget_id"], body["max_budget"], body["rpm_limit"]) == ("tier", 4, 9)
    admin_api.post("/budget/update", {"budget_id": "tier", "rpm_limit": 3})
    assert admin_api.get("/key/info", key=key["key"]).json()["info"]["rpm_limit"] == 3
    assert admin_api.get("/team/info", team_id=team["team_id"]).json()["team_info"]["rpm_limit"] == 3
    both = admin_api.post("/key/generate", {"budget_id": "tier", "max_budget": 1})
    assert both.status_code == 400 and both.json()["error"]["param"] == "budget_id"
    unlinked = admin_api.post("/key/update", {"key": key["key"], "budget_id": None}).json()
    assert unlinked["budget_id"] is None and unlinked["rpm_limit"] == 3


def test_only_proxy_admins_give_a_shared_budget(world):
    services.budget_create(by=BY, budget_id="tier", max_budget=1)
    refused = Api(world.keys["teamadmin"]).post("/key/generate", {"team_id": world.team_a.pk, "budget_id": "tier"})
    assert refused.status_code == 403
    assert not VirtualKey.objects.filter(budget__isnull=False).exists()
