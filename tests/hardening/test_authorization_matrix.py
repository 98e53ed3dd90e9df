"""Privilege escalation matrix: every non-admin role × every management write × every privileged field.

tests/api/test_roles.py pins each role's expected answers route by route. This suite attacks:
each caller sends every request an attacker would use to widen its rights (promote itself or a
new user, mint a key owned by an admin or in a team it does not run, move its key elsewhere,
raise budgets/limits/models, join a team or organization as admin), and after each the whole
authorization state is compared with before. A refused call must change nothing; an accepted one
may only create what the caller already holds. The world is tests/api/conftest.py's.
"""
from __future__ import annotations

import pytest

from accounts.models import Organization, OrganizationMembership, Project, Role, Team, TeamMembership, User, VirtualKey
from tests.api.conftest import Api

RANK = {Role.VIEWER: 0, Role.INTERNAL_USER: 1, Role.TEAM_ADMIN: 2, Role.ORG_ADMIN: 3, Role.PROXY_ADMIN: 4}
ATTACKERS = ["orgadmin", "teamadmin", "member", "viewer", "outsider"]
HUGE = 10**9


def attacks(world, who: str) -> list[tuple[str, dict]]:
    """(route, body) pairs that would widen the caller's rights if accepted as sent."""
    a, b, o1, o2 = world.team_a.pk, world.team_b.pk, world.org1.pk, world.org2.pk
    own_key = world.keys[who]
    all_models = ["*"]
    return [
        ("/user/update", {"user_id": who, "user_role": "proxy_admin"}),
        ("/user/update", {"user_id": who, "user_role": "org_admin"}),
        ("/user/update", {"user_id": who, "max_budget": HUGE, "models": all_models, "rpm_limit": HUGE}),
        ("/user/update", {"user_id": "member", "user_role": "proxy_admin"}),
        ("/user/new", {"user_id": f"{who}-puppet", "user_role": "proxy_admin"}),
        ("/user/new", {"user_id": f"{who}-puppet2", "user_role": "org_admin", "organization_id": o1}),
        ("/user/new", {"user_id": f"{who}-puppet3", "teams": [b], "user_role": "team_admin"}),
        ("/key/generate", {"user_id": "proxy"}),
        ("/key/generate", {"user_id": "orgadmin", "team_id": a}),
        ("/key/generate", {"team_id": b, "models": all_models}),
        ("/key/generate", {"organization_id": o2}),
        ("/key/generate", {"team_id": a, "max_budget": HUGE}),
        ("/key/generate", {"team_id": a, "models": all_models, "rpm_limit": HUGE, "tpm_limit": HUGE,
                           "max_parallel_requests": HUGE}),
        ("/key/update", {"key": own_key, "user_id": "proxy"}),
        ("/key/update", {"key": own_key, "team_id": b}),
        ("/key/update", {"key": own_key, "organization_id": o2}),
        ("/key/update", {"key": own_key, "team_id": a, "max_budget": HUGE}),
        ("/key/update", {"key": world.team_a_plain, "max_budget": HUGE, "models": all_models}),
        ("/key/update", {"key": world.team_b_plain, "user_id": who}),
        ("/key/regenerate", {"key": world.team_b_plain}),
        ("/key/unblock", {"key": world.team_b_plain}),
        ("/team/update", {"team_id": a, "max_budget": HUGE, "models": all_models, "rpm_limit": HUGE}),
        ("/team/update", {"team_id": b, "blocked": True}),
        ("/team/member_add", {"team_id": a, "member": {"role": "admin", "user_id": who}}),
        ("/team/member_add", {"team_id": b, "member": {"role": "admin", "user_id": who}}),
        ("/team/member_add", {"team_id": b, "member": {"role": "user", "user_id": who}}),
        ("/team/new", {"team_alias": f"{who}-team", "organization_id": o2, "max_budget": HUGE}),
        ("/team/new", {"team_alias": f"{who}-team2", "organization_id": o1, "max_budget": HUGE,
                       "members_with_roles": [{"role": "admin", "user_id": who}]}),
        ("/organization/new", {"organization_alias": f"{who}-org"}),
        ("/organization/member_add", {"organization_id": o1, "member": {"role": "org_admin", "user_id": who}}),
        ("/organization/member_add", {"organization_id": o2, "member": {"role": "org_admin", "user_id": who}}),
        ("/project/new", {"name": f"{who}-project", "team_id": b}),
        ("/project/new", {"name": f"{who}-project2", "organization_id": o2}),
    ]


def state() -> dict:
    """Everything that decides who may do and spend what."""
    return {
        "roles": dict(User.objects.values_list("username", "role")),
        "teams": {t.pk: (t.organization_id, t.max_budget, t.rpm_limit, t.tpm_limit, tuple(t.allowed_models or ()),
                         t.blocked) for t in Team.objects.all()},
        "team_members": set(TeamMembership.objects.values_list("team_id", "user__username", "role")),
        "org_members": set(OrganizationMembership.objects.values_list("organization_id", "user__username", "role")),
        "orgs": set(Organization.objects.values_list("pk", flat=True)),
        "projects": {p.pk: (p.team_id, p.organization_id) for p in Project.objects.all()},
        "keys": {k.pk: (k.key_hash, k.user.username if k.user else None, k.team_id, k.organization_id, k.project_id,
                        k.max_budget, k.rpm_limit, k.tpm_limit, k.max_parallel_requests,
                        tuple(k.allowed_models or ()), k.blocked)
                 for k in VirtualKey.objects.select_related("user")},
    }


def _admin_teams(who: str) -> set[int]:
    """Teams the caller runs: as their admin, or as admin of their organization."""
    teams = set(TeamMembership.objects.filter(user__username=who, role=TeamMembership.TeamRole.ADMIN)
                .values_list("team_id", flat=True))
    orgs = set(OrganizationMembership.objects.filter(user__username=who, role=OrganizationMembership.OrgRole.ADMIN)
               .values_list("organization_id", flat=True))
    return teams | set(Team.objects.filter(organization_id__in=orgs).values_list("pk", flat=True))


def _member_teams(who: str) -> set[int]:
    return set(TeamMembership.objects.filter(user__username=who).values_list("team_id", flat=True))


def assert_no_wider_rights(who: str, before: dict, after: dict, route: str, body: dict, runs: set[int],
                           member_of: set[int]) -> None:
    where = f"{who} {route} {body}"
    caller_rank = RANK[Role(before["roles"][who])]
    for user, role in after["roles"].items():
        if user in before["roles"]:
            assert role == before["roles"][user] or RANK[Role(role)] < RANK[Role(before["roles"][user])], where
        else:
            assert RANK[Role(role)] <= caller_rank and Role(role) != Role.PROXY_ADMIN, where
    for team, user, role in after["team_members"] - before["team_members"]:
        if role == TeamMembership.TeamRole.ADMIN or user == who:
            assert team in runs or team not in before["teams"], where          # a team it runs, or just made
    runs_orgs = {org for org, user, role in before["org_members"]
                 if user == who and role == OrganizationMembership.OrgRole.ADMIN}
    for org, user, role in after["org_members"] - before["org_members"]:
        # Only an organization's admin adds people to it, and never itself.
        assert org in runs_orgs and user != who, f"{where}: organization membership {org}/{user}/{role} granted"
    assert after["orgs"] == before["orgs"], where
    for team, values in after["teams"].items():
        if team in before["teams"] and values != before["teams"][team]:
            organization = values[0]
            assert team in runs and who != "teamadmin" or RANK[Role(before["roles"][who])] >= 3, where
            assert organization == before["teams"][team][0], where
    for key, values in after["keys"].items():
        if before["keys"].get(key) == values:
            continue
        _, owner, team, organization, _, max_budget, *_ = values
        # A key it made or changed is its own or a user's it just created (checked above), in a team it
        # belongs to or none, or a key of a team it runs.
        mine = owner == who or (owner is not None and owner not in before["roles"])
        assert (mine and (team is None or team in member_of | runs)) or team in runs, where
        assert owner not in ("proxy",) or who == "proxy", where
        if team is not None and max_budget is not None and Team.objects.get(pk=team).max_budget is not None:
            assert max_budget <= Team.objects.get(pk=team).max_budget, where


@pytest.mark.parametrize("who", ATTACKERS)
def test_no_role_can_grant_itself_or_anyone_more_than_it_holds(world, who):
    api = Api(world.keys[who])
    runs, member_of = _admin_teams(who), _member_teams(who)
    for route, body in attacks(world, who):
        before = state()
        response = api.post(route, body)
        after = state()
        assert response.status_code < 500, (who, route, body, response.content[:300])
        if response.status_code >= 400:
            assert after == before, f"{who} {route} {body}: refused ({response.status_code}) but changed state"
            assert set(response.json()) == {"error"}
        else:
            assert_no_wider_rights(who, before, after, route, body, runs, member_of)
    # And nothing on the proxy-admin-only surface answers these callers.
    assert Api(world.keys[who]).post("/model/new", {"model_name": "x", "litellm_params": {
        "model": "openai/x", "api_base": "http://attacker.example"}}).status_code == 403


def test_escalation_attempts_by_a_key_minted_by_the_attacker_change_nothing(world):
    """A key a member mints for itself has no more rights on the management API than the member."""
    member = Api(world.keys["member"])
    minted = member.post("/key/generate", {"team_id": world.team_a.pk})
    assert minted.status_code == 200
    api = Api(minted.json()["key"])
    for route, body in attacks(world, "member"):
        before = state()
        response = api.post(route, body)
        assert response.status_code < 500
        if response.status_code >= 400:
            assert state() == before, (route, body)
        else:
            assert_no_wider_rights("member", before, state(), route, body, set(), {world.team_a.pk})
