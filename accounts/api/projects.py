"""/project/*: projects under a team or organization, with their own provider keys."""
from __future__ import annotations

from accounts import policy, services
from accounts import schemas as s
from accounts.api.common import actor_of, budget_sent, fields_sent, router


@router.post("/project/new", response=s.ProjectOut)
def project_new(request, body: s.ProjectNewIn):
    actor = actor_of(request)
    policy.require_write(actor)
    team = policy.team_to_read(actor, body.team_id) if policy.given(body.team_id) else None
    org = policy.organization_to_read(actor, body.organization_id) if policy.given(body.organization_id) else None
    project = services.project_create(by=actor, name=body.project_alias or body.name or "", team=team,
                                      organization=org, models=body.models, metadata=body.metadata,
                                      is_active=body.is_active, credentials=body.credentials, **budget_sent(body))
    return s.project_out(project)


@router.get("/project/info", response=s.ProjectOut)
def project_info(request, project_id: str):
    return s.project_out(policy.project_to_read(actor_of(request), project_id))


@router.post("/project/update", response=s.ProjectOut)
def project_update(request, body: s.ProjectUpdateIn):
    actor = actor_of(request)
    policy.require_write(actor)
    project = policy.project_to_manage(actor, body.project_id)
    fields = fields_sent(body, "models", "metadata", "is_active", "credentials")
    if body.project_alias or body.name:
        fields["name"] = body.project_alias or body.name
    return s.project_out(services.project_update(by=actor, project=project, **fields))


@router.post("/project/delete", response=s.ProjectDeleteOut)
def project_delete(request, body: s.ProjectDeleteIn):
    actor = actor_of(request)
    policy.require_write(actor)
    projects = [policy.project_to_manage(actor, p, what="delete it") for p in body.project_ids]
    services.project_delete_many(by=actor, projects=projects)
    return {"deleted_projects": [str(p) for p in body.project_ids]}


@router.get("/project/list", response=list[s.ProjectOut])
def project_list(request, team_id: str | None = None):
    actor = actor_of(request)
    qs = policy.visible_projects(actor).select_related("team", "organization").prefetch_related("credentials")
    if team_id:
        qs = qs.filter(team_id=policy.team_to_read(actor, team_id).pk)
    return [s.project_out(p) for p in qs]
