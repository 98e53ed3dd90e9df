"""The authorization matrix: every role × every management route × every privileged field, by hand.

Each row is one request an operator or an attacker might send; each column is what a caller in
that role must get. The expected answers are written out here, not derived from accounts.policy:
they are the specification the policy is held to (docs/security.md says the same in words). A
refusal must change nothing at all; an accepted write must change something.

The world and its columns (one person per role) are in tests/hardening/authorization_town.py.

Statuses: 200 done; 400 refused for its values (a limit above the parent's, an env reference the
operator did not allow); 403 refused for the caller's rights over something they may see; 404 for
something they may not see, alike for missing and hidden (issue 16.12).

The admin's pages and actions and the management commands have tables of their own in
test_authorization_admin.py.
Routes and fields added later extend these tables: a route missing here is a route nobody has
checked.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from django.db import transaction

from accounts.api import management_auth
from accounts.models import Team, VirtualKey
from billing.models import SpendLog
from llmur.api import api as ninja_api
from tests.accounts.api.conftest import Api
from tests.hardening.authorization_town import PASSWORD, ROLES, bearer, resolve, state

HUGE = 10**6


# --------------------------------------------------------------------------- the management API

R = tuple[str, tuple[int, int, int, int, int, int, int], dict]

#  route                              prox orga team memb view nusr strg  request
API: list[R] = [
    # ---- users: accounts are a proxy admin's or their own (16.2)
    ("POST /user/new",               (200, 403, 403, 403, 403, 403, 403), {"user_id": "n1"}),
    ("POST /user/new",               (200, 200, 200, 403, 403, 403, 404), {"user_id": "n2", "teams": ["@team_a"]}),
    ("POST /user/new",               (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "n3", "teams": ["@team_a"], "user_role": "proxy_admin"}),
    ("POST /user/new",               (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "n4", "teams": ["@team_a"], "max_budget": 10}),
    ("POST /user/new",               (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "n5", "teams": ["@team_a"], "models": ["gpt-4o"]}),
    ("POST /user/new",               (200, 404, 404, 404, 403, 403, 200), {"user_id": "n6", "teams": ["@team_b"]}),
    # without user_id one is generated; creating still follows the rules above
    ("POST /user/new",               (200, 200, 200, 403, 403, 403, 404), {"teams": ["@team_a"]}),
    # an unknown user_id is created implicitly (as LiteLLM does) only for a proxy admin; else 404
    ("POST /user/update",            (200, 404, 404, 404, 403, 403, 404), {"user_id": "ghost", "metadata": {"a": 1}}),
    ("POST /user/update",            (200, 403, 403, 200, 403, 403, 404), {"user_id": "member", "password": PASSWORD}),
    ("POST /user/update",            (200, 403, 403, 200, 403, 403, 404),
        {"user_id": "member", "user_email": "new@evil.example"}),
    ("POST /user/update",            (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "member", "user_role": "proxy_admin"}),
    ("POST /user/update",            (200, 403, 403, 403, 403, 403, 404), {"user_id": "member", "max_budget": HUGE}),
    ("POST /user/update",            (200, 403, 403, 403, 403, 403, 404), {"user_id": "member", "models": ["gpt-4o"]}),
    ("POST /user/update",            (200, 403, 403, 403, 403, 403, 404),
        {"user_id": "member", "rpm_limit": HUGE, "tpm_limit": HUGE}),
    ("POST /user/update",            (200, 404, 404, 404, 403, 403, 200),
        {"user_id": "outsider", "password": PASSWORD}),
    ("POST /user/delete",            (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["member"]}),
    ("GET /user/info",               (200, 200, 200, 200, 404, 403, 404), {"user_id": "member"}),
    ("GET /user/list",               (200, 200, 200, 200, 200, 403, 200), {}),
    # ---- members: no pulling in people from elsewhere (16.2)
    ("POST /team/member_add",        (200, 200, 200, 403, 403, 403, 404),
        {"team_id": "@team_a", "member": {"user_id": "brand-new"}}),
    ("POST /team/member_add",        (200, 403, 403, 403, 403, 403, 404),
        {"team_id": "@team_a", "member": {"user_id": "outsider"}}),
    ("POST /team/member_add",        (200, 403, 403, 403, 403, 403, 404),
        {"team_id": "@team_a", "member": {"user_id": "proxy"}}),
    # someone already in the team: 400, as LiteLLM answers (after the same checks as any add)
    ("POST /team/member_add",        (400, 400, 400, 403, 403, 403, 404),
        {"team_id": "@team_a", "member": {"user_id": "member", "role": "admin"}}),
    ("POST /team/member_add",        (200, 404, 404, 404, 403, 403, 403),
        {"team_id": "@team_b", "member": {"user_id": "member"}}),
    ("POST /team/member_delete",     (200, 200, 200, 403, 403, 403, 404), {"team_id": "@team_a", "user_id": "member"}),
    # not a member (or nobody): 400, as LiteLLM answers
    ("POST /team/member_delete",     (400, 400, 400, 403, 403, 403, 404),
        {"team_id": "@team_a", "user_id": "outsider"}),
    ("POST /organization/member_add", (200, 403, 404, 404, 403, 403, 404),
        {"organization_id": "@org1", "member": {"user_id": "outsider"}}),
    ("POST /organization/member_add", (200, 200, 404, 404, 403, 403, 404),
        {"organization_id": "@org1", "member": {"user_id": "fresh", "role": "org_admin"}}),
    # ---- teams: a team's own budget, limits, models and blocked state are set from above it
    ("POST /team/new",               (200, 403, 403, 403, 403, 403, 403), {"team_alias": "t0"}),
    # the client's team_id; one already taken is a 400, but only after the caller may create teams at all
    ("POST /team/new",               (200, 403, 403, 403, 403, 403, 403), {"team_id": "client-chosen-id"}),
    ("POST /team/new",               (400, 403, 403, 403, 403, 403, 403), {"team_id": "@team_b"}),
    ("POST /team/new",               (200, 200, 404, 404, 403, 403, 404),
        {"team_alias": "t1", "organization_id": "@org1"}),
    ("POST /team/new",               (400, 400, 404, 404, 403, 403, 404),
        {"team_alias": "t2", "organization_id": "@org1", "max_budget": 1000}),
    ("POST /team/update",            (200, 200, 200, 403, 403, 403, 404),
        {"team_id": "@team_a", "team_alias": "renamed"}),
    ("POST /team/update",            (200, 200, 403, 403, 403, 403, 404), {"team_id": "@team_a", "max_budget": 60}),
    ("POST /team/update",            (400, 400, 403, 403, 403, 403, 404), {"team_id": "@team_a", "max_budget": 1000}),
    ("POST /team/update",            (200, 200, 403, 403, 403, 403, 404), {"team_id": "@team_a", "models": ["claude"]}),
    ("POST /team/update",            (200, 200, 403, 403, 403, 403, 404),
        {"team_id": "@team_a", "rpm_limit": HUGE, "tpm_limit": HUGE}),
    ("POST /team/update",            (200, 200, 403, 403, 403, 403, 404), {"team_id": "@team_a", "blocked": True}),
    ("POST /team/update",            (200, 404, 404, 404, 403, 403, 403), {"team_id": "@team_b", "max_budget": 1}),
    ("POST /team/delete",            (200, 200, 404, 404, 403, 403, 404), {"team_ids": ["@team_c"]}),
    ("POST /team/delete",            (400, 400, 403, 403, 403, 403, 404), {"team_ids": ["@team_a"]}),
    ("GET /team/info",               (200, 404, 404, 404, 404, 404, 200), {"team_id": "@team_b"}),
    # a key with no user reads its own team (and among its keys, only itself)
    ("GET /team/info",               (200, 200, 200, 200, 200, 200, 404), {"team_id": "@team_a"}),
    ("GET /team/list",               (200, 404, 404, 404, 404, 403, 404), {"organization_id": "@org2"}),
    # ---- keys: inside a scope the issuer administers, within its limits (16.3)
    ("POST /key/generate",           (200, 200, 200, 200, 403, 403, 200), {}),
    # an unknown user_id is created implicitly only for a proxy admin; else 404
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 404), {"user_id": "ghost"}),
    ("POST /key/generate",           (200, 200, 200, 200, 403, 403, 404), {"team_id": "@team_a"}),
    ("POST /key/generate",           (400, 400, 400, 400, 403, 403, 404), {"team_id": "@team_a", "models": ["claude"]}),
    ("POST /key/generate",           (400, 400, 400, 400, 403, 403, 404), {"team_id": "@team_a", "max_budget": 100}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 200), {"team_id": "@team_b"}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 404), {"organization_id": "@org2"}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 200), {"project_id": "@project_b"}),
    ("POST /key/generate",           (200, 200, 200, 200, 403, 403, 404), {"user_id": "member"}),
    ("POST /key/generate",           (200, 400, 400, 200, 403, 403, 404), {"user_id": "member", "models": ["claude"]}),
    ("POST /key/generate",           (200, 400, 400, 200, 403, 403, 404), {"user_id": "member", "max_budget": HUGE}),
    ("POST /key/generate",           (200, 200, 200, 404, 403, 403, 404), {"user_id": "viewer", "team_id": "@team_a"}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 404), {"user_id": "proxy", "team_id": "@team_a"}),
    ("POST /key/generate",           (200, 404, 404, 404, 403, 403, 200),
        {"user_id": "outsider", "team_id": "@team_b"}),
    ("POST /key/update",             (200, 200, 200, 404, 403, 403, 404), {"key": "@team_a_key", "max_budget": 40}),
    ("POST /key/update",             (400, 400, 400, 404, 403, 403, 404), {"key": "@team_a_key", "max_budget": 60}),
    ("POST /key/update",             (400, 400, 400, 404, 403, 403, 404), {"key": "@team_a_key", "models": ["claude"]}),
    # ---- owners only tighten their keys (16.5)
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403), {"key": "@own_limited", "max_budget": HUGE}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403), {"key": "@own_limited", "max_budget": None}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403), {"key": "@own_limited", "models": []}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403),
        {"key": "@own_limited", "models": ["gpt-4o-mini", "gpt-4o"]}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 403), {"key": "@own_limited", "rpm_limit": None}),
    ("POST /key/update",             (200, 200, 200, 200, 403, 403, 200), {"key": "@own_limited", "tpm_limit": 10}),
    ("POST /key/update",             (200, 200, 200, 200, 403, 403, 200),
        {"key": "@own_limited", "max_budget": 0.5, "rpm_limit": 1}),
    ("POST /key/update",             (200, 403, 403, 403, 403, 403, 404),
        {"key": "@own_limited", "team_id": "@team_a"}),
    ("POST /key/update",             (200, 200, 200, 403, 403, 403, 404),
        {"key": "@member_team_key", "max_budget": 40}),
    ("POST /key/update",             (200, 200, 200, 200, 403, 403, 404), {"key": "@member_team_key", "max_budget": 1}),
    ("POST /key/update",             (200, 404, 404, 404, 403, 403, 200), {"key": "@team_b_key", "user_id": "@self"}),
    ("POST /key/block",              (200, 200, 200, 200, 403, 403, 200), {"key": "@own_limited"}),
    ("POST /key/unblock",            (200, 403, 403, 403, 403, 403, 403), {"key": "@own_blocked"}),
    ("POST /key/block",              (200, 404, 404, 404, 403, 403, 200), {"key": "@team_b_key"}),
    ("POST /key/regenerate",         (200, 404, 404, 404, 403, 403, 200), {"key": "@team_b_key"}),
    ("POST /key/regenerate",         (200, 200, 200, 200, 403, 403, 200), {"key": "@own_limited"}),
    ("POST /key/delete",             (200, 200, 200, 404, 403, 403, 404), {"keys": ["@team_a_key"]}),
    ("POST /key/delete",             (200, 200, 200, 200, 403, 403, 200), {"keys": ["@own_blocked"]}),
    ("GET /key/info",                (200, 404, 404, 404, 404, 404, 200), {"key": "@team_b_key"}),
    # every key reads about itself, one with no user too
    ("GET /key/info",                (200, 200, 200, 200, 200, 200, 200), {}),
    ("GET /key/list",                (200, 200, 200, 403, 403, 403, 404), {"team_id": "@team_a"}),
    # ---- models: proxy admins only; run-time deployments name only allowed variables (16.7)
    ("POST /model/new",              (200, 403, 403, 403, 403, 403, 403),
        {"model_name": "m1", "litellm_params": {"model": "openai/m1", "api_key": "sk-literal-1"}}),
    ("POST /model/new",              (400, 403, 403, 403, 403, 403, 403),
        {"model_name": "m2", "litellm_params": {"model": "openai/m2", "api_base": "http://attacker.example/v1",
                                                "api_key": "os.environ/LLMUR_CONFIGURATION"}}),
    ("POST /model/delete",           (200, 403, 403, 403, 403, 403, 403), {"id": "@db_model"}),
    ("GET /model/info",              (200, 200, 200, 200, 200, 200, 200), {}),
    # ---- organizations
    ("GET /organization/list",       (200, 200, 200, 200, 200, 403, 200), {}),
    ("POST /organization/new",       (200, 403, 403, 403, 403, 403, 403), {"organization_alias": "o-new"}),
    ("POST /organization/new",       (200, 403, 403, 403, 403, 403, 403), {"organization_id": "o-chosen"}),
    ("POST /organization/new",       (400, 403, 403, 403, 403, 403, 403), {"organization_id": "@org2"}),
    ("GET /organization/info",       (200, 200, 404, 404, 404, 403, 404), {"organization_id": "@org1"}),
    # ---- projects: inside the team or organization that owns them
    ("POST /project/new",            (200, 200, 200, 403, 403, 403, 404),
        {"project_alias": "p1", "team_id": "@team_a"}),
    ("POST /project/new",            (400, 400, 400, 403, 403, 403, 404),
        {"project_alias": "p2", "team_id": "@team_a", "max_budget": 1000}),
    ("POST /project/new",            (200, 404, 404, 404, 403, 403, 404),
        {"project_alias": "p3", "organization_id": "@org2"}),
    ("POST /project/update",         (200, 200, 200, 403, 403, 403, 404),
        {"project_id": "@project_a", "max_budget": 10}),
    ("POST /project/update",         (400, 400, 400, 403, 403, 403, 404),
        {"project_id": "@project_a", "models": ["claude"]}),
    ("POST /project/delete",         (200, 200, 200, 403, 403, 403, 404), {"project_ids": ["@project_a"]}),
    ("GET /project/info",            (200, 404, 404, 404, 404, 403, 200), {"project_id": "@project_b"}),
    ("GET /project/list",            (200, 404, 404, 404, 404, 403, 200), {"team_id": "@team_b"}),
    # ---- spend
    ("GET /spend/logs",              (200, 404, 404, 404, 404, 403, 200), {"team_id": "@team_b"}),
    ("GET /spend/logs",              (200, 404, 404, 404, 404, 403, 200), {"api_key": "@team_b_key"}),
    ("GET /global/spend/report",     (200, 200, 200, 200, 200, 403, 200), {}),
    # ---- agent keys (RFC 8628 sign-in): member's agent's key in team-a; owners and the scope's admins revoke it
    ("GET /sso/agent_keys",          (200, 200, 200, 200, 200, 403, 200), {}),
    ("POST /sso/agent_keys/revoke",  (200, 200, 200, 200, 404, 403, 404), {"id": "@agent_sign_in"}),
    # ---- end users (LiteLLM's customers, both paths) and shared budgets: proxy admins only
    ("POST /customer/new",           (200, 403, 403, 403, 403, 403, 403), {"user_id": "c-new"}),
    ("POST /end_user/new",           (200, 403, 403, 403, 403, 403, 403), {"user_id": "c-new", "max_budget": 1}),
    ("GET /customer/info",           (200, 403, 403, 403, 403, 403, 403), {"end_user_id": "cust-1"}),
    ("GET /end_user/info",           (200, 403, 403, 403, 403, 403, 403), {"end_user_id": "cust-1"}),
    ("POST /customer/update",        (200, 403, 403, 403, 403, 403, 403), {"user_id": "cust-1", "max_budget": 2}),
    ("POST /end_user/update",        (200, 403, 403, 403, 403, 403, 403), {"user_id": "cust-1", "budget_id": "tier-1"}),
    ("POST /customer/delete",        (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-1"]}),
    ("POST /end_user/delete",        (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-1"]}),
    ("GET /customer/list",           (200, 403, 403, 403, 403, 403, 403), {}),
    ("GET /end_user/list",           (200, 403, 403, 403, 403, 403, 403), {}),
    ("POST /customer/block",         (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-1"]}),
    ("POST /end_user/block",         (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["c-unseen"]}),
    ("POST /customer/unblock",       (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-blocked"]}),
    ("POST /end_user/unblock",       (200, 403, 403, 403, 403, 403, 403), {"user_ids": ["cust-blocked"]}),
    ("POST /budget/new",             (200, 403, 403, 403, 403, 403, 403), {"budget_id": "b-new", "max_budget": 1}),
    ("POST /budget/update",          (200, 403, 403, 403, 403, 403, 403), {"budget_id": "tier-1", "max_budget": 3}),
    ("POST /budget/info",            (200, 403, 403, 403, 403, 403, 403), {"budgets": ["tier-1"]}),
    ("GET /budget/list",             (200, 403, 403, 403, 403, 403, 403), {}),
    ("POST /budget/delete",          (200, 403, 403, 403, 403, 403, 403), {"id": "tier-1"}),
    ("POST /key/generate",           (200, 403, 403, 403, 403, 403, 403), {"budget_id": "tier-1"}),
    ("POST /team/update",            (200, 403, 403, 403, 403, 403, 404), {"team_id": "@team_a", "budget_id": "tier-1"}),
    # ---- members of teams and organizations, organizations deleted
    ("POST /team/member_update",     (200, 200, 200, 403, 403, 403, 404),
        {"team_id": "@team_a", "user_id": "member", "role": "admin"}),
    ("POST /team/member_update",     (200, 404, 404, 404, 403, 403, 200),
        {"team_id": "@team_b", "user_id": "outsider", "role": "user"}),
    ("POST /organization/member_update", (200, 200, 404, 404, 403, 403, 404),
        {"organization_id": "@org1", "user_id": "orgadmin", "role": "internal_user"}),
    ("POST /organization/member_delete", (200, 200, 404, 404, 403, 403, 404),
        {"organization_id": "@org1", "user_id": "orgadmin"}),
    ("POST /organization/delete",    (200, 404, 404, 404, 403, 403, 404), {"organization_ids": ["@org3"]}),
    ("POST /organization/delete",    (400, 403, 404, 404, 403, 403, 404), {"organization_ids": ["@org1"]}),
    # ---- models and spend, continued
    ("POST /model/update",           (200, 403, 403, 403, 403, 403, 403),
        {"model_name": "renamed-model", "model_info": {"id": "@db_model"}}),
    ("GET /v2/model/info",           (200, 200, 200, 200, 200, 200, 200), {}),
    ("GET /model_group/info",        (200, 200, 200, 200, 200, 200, 200), {}),
    ("GET /global/spend/teams",      (200, 200, 200, 200, 200, 403, 200), {}),
    # ---- cross-session memory (one summary's routes: MEMORY_ITEM below)
    ("GET /memory/summaries",        (200, 200, 200, 200, 200, 403, 200), {}),
    ("POST /memory/end_user/delete", (200, 200, 200, 403, 403, 403, 200), {"end_user": "alice"}),
]


def _api_id(row: R) -> str:
    route, _, body = row
    return f"{route} {json.dumps(body, sort_keys=True)}"[:120]


# Reads that LiteLLM made POST routes: a 200 from them changes nothing.
READS_BY_POST = {"/budget/info"}


@pytest.mark.parametrize("row", API, ids=[_api_id(r) for r in API])
def test_management_api(town, row):
    route, expected, body = row
    method, path = route.split(" ", 1)
    mismatches = []
    for who, status in zip(ROLES, expected, strict=True):
        with transaction.atomic():
            api = Api(bearer(town, who))
            request = resolve(body, town, who)
            before = state()
            response = api.post(path, request) if method == "POST" else api.get(path, **request)
            after = state()
            transaction.set_rollback(True)
        got = response.status_code
        if got != status:
            mismatches.append(f"{who}: expected {status}, got {got}: {response.content[:240]!r}")
        elif got >= 400:
            if after != before:
                mismatches.append(f"{who}: refused with {got} but changed {_diff(before, after)}")
            if set(response.json()) != {"error"}:
                mismatches.append(f"{who}: refusal not in the OpenAI error shape: {response.content[:200]!r}")
        elif method == "POST" and path not in READS_BY_POST and after == before:
            mismatches.append(f"{who}: answered {got} but changed nothing")
    assert not mismatches, "\n".join(mismatches)


def _diff(before: dict, after: dict) -> str:
    return ", ".join(name for name in before if before[name] != after[name])


# One memory summary read or deleted: (method, which summary, statuses per role).
MEMORY_ITEM = [
    ("GET",    "a",      (200, 200, 200, 404, 404, 403, 404)),
    ("DELETE", "a",      (200, 200, 200, 404, 404, 403, 404)),
    ("GET",    "member", (200, 200, 200, 200, 404, 403, 404)),
    ("DELETE", "b",      (200, 404, 404, 404, 404, 403, 200)),
]


@pytest.mark.parametrize("row", MEMORY_ITEM, ids=[f"{m} {w}" for m, w, _ in MEMORY_ITEM])
def test_memory_summary(town, row):
    method, which, expected = row
    path = f"/memory/summaries/{town.summaries[which]}"
    mismatches = []
    for who, status in zip(ROLES, expected, strict=True):
        with transaction.atomic():
            api = Api(bearer(town, who))
            before = state()
            response = (api.get(path) if method == "GET"
                        else api.client.delete(path, **api._headers()))
            after = state()
            transaction.set_rollback(True)
        if response.status_code != status:
            mismatches.append(f"{who}: expected {status}, got {response.status_code}: {response.content[:200]!r}")
        elif (after != before) != (method == "DELETE" and status == 200):
            mismatches.append(f"{who}: {method} answered {status} and changed {_diff(before, after) or 'nothing'}")
    assert not mismatches, "\n".join(mismatches)


def test_every_management_route_is_in_the_table():
    """A route added to the management API (any router authenticated like it) without a row here fails."""
    covered = {route.split(" ", 1)[1] for route, _, _ in API}
    same_handler = {"/key/{key}/regenerate",  # the path form of /key/regenerate
                    "/memory/summaries/{summary_id}"}  # test_memory_summary
    routes = {"/" + path.lstrip("/") for _, router in ninja_api._routers if router.auth is management_auth
              for path in router.path_operations}
    missing = routes - covered - same_handler
    assert not missing, f"management routes with no row in the authorization matrix: {sorted(missing)}"


# --------------------------------------------------------------------------- spend: who sees whose

def test_spend_each_role_sees(town):
    """/spend/logs: hand-written sets of the teams whose spend each role sees (None: no team)."""
    w = town.world
    now = dt.datetime(2026, 4, 10, 12, tzinfo=dt.timezone.utc)
    for team, key, user in ((w.team_a, w.team_a_key, None), (w.team_b, w.team_b_key, None),
                            (None, VirtualKey.objects.get(key_alias="member-own"), w.users["member"])):
        SpendLog.objects.create(request_id=uuid.uuid4().hex, key=key, team=team, user=user, model="gpt-4o",
                                cost=Decimal("0.01"), started_at=now, ended_at=now)
    expected = {
        "proxy": {"team-a", "team-b", None}, "orgadmin": {"team-a"}, "teamadmin": {"team-a"},
        "member": {None}, "viewer": set(), "stranger": {"team-b"},
    }
    names = {t.public_id: t.name for t in Team.objects.all()}
    for who, teams in expected.items():
        rows = Api(bearer(town, who)).get("/spend/logs").json()
        assert {names.get(r["team_id"]) for r in rows} == teams, who
