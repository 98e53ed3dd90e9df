"""/organization/*: create, read, list organizations and add their members."""
from __future__ import annotations

from accounts import policy, services
from accounts import schemas as s
from accounts.api.common import actor_of, budget_sent, members_of, router


@router.post("/organization/new", response=s.OrganizationOut)
def organization_new(request, body: s.OrganizationNewIn):
    actor = actor_of(request)
    policy.require_proxy_admin(actor, "create organizations")
    budget, limits = services.budget_for_reference(by=actor, budget_id=body.budget_id, limits=budget_sent(body))
    org = services.organization_create(by=actor, name=body.organization_alias, organization_id=body.organization_id,
                                       models=body.models, metadata=body.metadata, **limits)
    if budget is not None:
        org = services.budget_reference(by=actor, entity=org, budget=budget)
    return s.organization_out(org)


@router.get("/organization/info", response=s.OrganizationOut)
def organization_info(request, organization_id: str):
    return s.organization_out(policy.organization_to_read(actor_of(request), organization_id))


@router.get("/organization/list", response=list[s.OrganizationOut])
def organization_list(request):
    return [s.organization_out(o) for o in policy.visible_organizations(actor_of(request))]


# LiteLLM's member roles → llmur's organization roles.
ORG_ROLES = {"admin": "org_admin", "user": "member", "internal_user": "member"}


@router.post("/organization/member_add", response=s.OrganizationOut)
def organization_member_add(request, body: s.OrganizationMemberAddIn):
    actor = actor_of(request)
    policy.require_write(actor)
    org = policy.organization_to_manage(actor, body.organization_id, what="add members")
    services.organization_members_set(by=actor, organization=org, members=members_of(body.member, ORG_ROLES))
    return s.organization_out(org)
