"""/team/*: create, read, change, delete and list teams, and add or remove their members."""
from __future__ import annotations

from accounts import policy, selectors, services
from accounts import schemas as s
from accounts.api.common import actor_of, budget_sent, fields_sent, members_of, router, self_key_auth


@router.post("/team/new", response=s.TeamOut)
def team_new(request, body: s.TeamNewIn):
    """team_id is the client's (a UUID when omitted); team_alias is optional and may repeat."""
    actor = actor_of(request)
    policy.require_write(actor)
    org = policy.organization_to_read(actor, body.organization_id) if policy.given(body.organization_id) else None
    budget, limits = services.budget_for_reference(by=actor, budget_id=body.budget_id, limits=budget_sent(body))
    team = services.team_create(by=actor, team_id=body.team_id, name=body.team_alias, organization=org,
                                models=body.models, metadata=body.metadata, blocked=body.blocked,
                                aliases=body.aliases if body.aliases is not None else body.model_aliases,
                                log_requests=bool(body.log_requests), members=members_of(body.members_with_roles),
                                **limits)
    if budget is not None:
        team = services.budget_reference(by=actor, entity=team, budget=budget)
    return s.team_out(team)


@router.get("/team/info", response=s.TeamInfoOut, auth=self_key_auth)
def team_info(request, team_id: str):
    """Members see their team; a key of the team with no user behind it sees it too (with only itself)."""
    actor = actor_of(request)
    team = policy.team_to_read(actor, team_id)
    return {"team_id": team.public_id, "team_info": s.team_out(team),
            "keys": [s.key_out(k) for k in policy.team_keys_shown(actor, team)],
            "team_memberships": [s.member_out(m) for m in team.memberships.select_related("user")]}


@router.post("/team/update", response=s.TeamUpdateOut)
def team_update(request, body: s.TeamUpdateIn):
    """Answers the team both at the top level (llmur) and under `data` (LiteLLM)."""
    actor = actor_of(request)
    policy.require_write(actor)
    team = policy.team_to_manage(actor, body.team_id)
    fields = fields_sent(body, "models", "metadata", "blocked", "aliases", "log_requests")
    if "team_alias" in body.model_fields_set:
        fields["name"] = body.team_alias or ""
    budget, _ = services.budget_for_reference(by=actor, budget_id=body.budget_id, limits=budget_sent(body))
    team = services.team_update(by=actor, team=team, **fields)
    if "budget_id" in body.model_fields_set:
        team = services.budget_reference(by=actor, entity=team, budget=budget)
    out = s.team_out(team)
    return {**out, "data": out}


@router.post("/team/delete", response=s.TeamDeleteOut)
def team_delete(request, body: s.TeamDeleteIn):
    actor = actor_of(request)
    policy.require_write(actor)
    teams = [policy.team_to_read(actor, t) for t in body.team_ids]
    services.team_delete_many(by=actor, teams=teams)
    return {"deleted_teams": [str(t) for t in body.team_ids]}


@router.get("/team/list", response=list[s.TeamOut])
def team_list(request, organization_id: str | None = None):
    actor = actor_of(request)
    qs = policy.visible_teams(actor).select_related("organization")
    if organization_id:
        qs = qs.filter(organization_id=policy.organization_to_read(actor, organization_id).pk)
    return [s.team_out(t) for t in qs]


@router.post("/team/member_add", response=s.TeamOut)
def team_member_add(request, body: s.TeamMemberAddIn):
    """Someone already in the team is a 400, as in LiteLLM."""
    actor = actor_of(request)
    policy.require_write(actor)
    team = policy.team_to_manage(actor, body.team_id, what="add members")
    services.team_members_add(by=actor, team=team, members=members_of(body.member), new_only=True,
                              max_budget=body.max_budget_in_team)
    return s.team_out(team)


@router.post("/team/member_delete", response=s.TeamOut)
def team_member_delete(request, body: s.TeamMemberDeleteIn):
    """Someone not in the team (or nobody at all) is a 400, as in LiteLLM."""
    actor = actor_of(request)
    policy.require_write(actor)
    team = policy.team_to_manage(actor, body.team_id, what="remove members")
    user = selectors.team_member_get(team=team, user_id=body.user_id, user_email=body.user_email)
    services.team_member_delete(by=actor, team=team, user=user)
    return s.team_out(team)
