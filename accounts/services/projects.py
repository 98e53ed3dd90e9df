"""Writes on projects and their provider credentials."""
from __future__ import annotations

from typing import Any, Iterable

from django.db import transaction

from accounts import policy
from accounts.audit import audit_record, snapshot
from accounts.keys import secret_encrypt
from accounts.models import Organization, Project, ProjectCredential, Team, VirtualKey
from accounts.policy import Actor
from accounts.services.common import (
    BUDGET_FIELDS,
    PROVIDERS,
    apply_budget,
    apply_common_fields,
    budget_values,
    invalid,
    locked_for_update,
    parse_memory,
    parse_models,
    save_created,
    save_update,
)
from accounts.services.keys import delete_with_keys


def _require_project_admin(by: Actor, project: Project) -> None:
    if not policy.can_manage_project(by, project):
        raise policy.forbidden(f"Only an admin of project {project.pk}'s team or organization may change it.")


@transaction.atomic
def project_create(*, by: Actor, name: str, team: Team | None = None, organization: Organization | None = None,
                   models: Any = None, metadata: dict | None = None, is_active: bool = True,
                   log_requests: bool = False, credentials: dict[str, str] | None = None, memory: Any = None,
                   **budget: Any) -> Project:
    name = (name or "").strip()
    if not name:
        raise invalid("project_alias must not be empty.", "project_alias")
    if team is None and organization is None:
        raise invalid("A project belongs to a team or an organization: give team_id or organization_id.", "team_id")
    if not policy.can_create_project(by, team=team, organization=organization):
        raise policy.forbidden("Only an admin of the project's team or organization may create it.")
    if team is not None and organization is None:
        organization = team.organization
    project = Project(name=name, team=team, organization=organization, allowed_models=parse_models(models),
                      metadata=metadata or {}, is_active=is_active, log_requests=bool(log_requests),
                      memory=parse_memory(memory))
    apply_budget(project, budget_values(budget))
    policy.check_within(project, [team, organization], what="project")
    save_created(by=by, instance=project)
    for provider, secret in (credentials or {}).items():
        project_credential_set(by=by, project=project, provider=provider, api_key=secret)
    return project


PROJECT_UPDATABLE = {"name", "models", "metadata", "is_active", "team", "organization", "credentials",
                     "log_requests", "memory", *BUDGET_FIELDS}


@transaction.atomic
def project_update(*, by: Actor, project: Project, **fields: Any) -> Project:
    _require_project_admin(by, project)
    project, before = locked_for_update(project, fields, updatable=PROJECT_UPDATABLE, what="project")
    if fields.get("name"):
        project.name = fields["name"].strip()
    if "is_active" in fields:
        project.is_active = bool(fields["is_active"])
    for name in ("team", "organization"):
        if name in fields:
            setattr(project, name, fields[name])
    if project.team is None and project.organization is None:
        raise invalid("A project belongs to a team or an organization: give team_id or organization_id.", "team_id")
    if ("team" in fields or "organization" in fields) and not policy.can_create_project(
            by, team=project.team, organization=project.organization):
        raise policy.forbidden("A project moves only into a team or organization you administer.")
    apply_common_fields(project, fields)
    policy.check_within(project, [project.team, project.organization], what="project")
    save_update(by=by, instance=project, before=before)
    for provider, secret in (fields.get("credentials") or {}).items():
        if secret:
            project_credential_set(by=by, project=project, provider=provider, api_key=secret)
        else:
            project_credential_delete(by=by, project=project, provider=provider)
    return project


@transaction.atomic
def project_delete(*, by: Actor, project: Project) -> None:
    _require_project_admin(by, project)
    delete_with_keys(by=by, instance=project, keys=VirtualKey.objects.filter(project=project))


@transaction.atomic
def project_delete_many(*, by: Actor, projects: Iterable[Project]) -> None:
    for project in projects:
        project_delete(by=by, project=project)


@transaction.atomic
def project_credential_set(*, by: Actor, project: Project, provider: str, api_key: str) -> ProjectCredential:
    """Stores (or replaces) a project's provider key, encrypted; it can never be read back."""
    _require_project_admin(by, project)
    provider = (provider or "").strip().lower()
    if provider not in PROVIDERS:
        raise invalid(f"Unknown provider {provider!r} for credentials (expected one of {', '.join(PROVIDERS)}).",
                      "credentials")
    if not isinstance(api_key, str) or len(api_key.strip()) < 8:
        raise invalid(f"credentials.{provider} must be the provider's API key (at least 8 characters).",
                      "credentials")
    api_key = api_key.strip()
    credential = ProjectCredential.objects.filter(project=project, provider=provider).first()
    before = snapshot(credential)
    if credential is None:
        credential = ProjectCredential(project=project, provider=provider)
    credential.encrypted_api_key = secret_encrypt(api_key)
    credential.display = "…" + api_key[-4:]
    credential.save()
    # Touch the project so the gateway's signal drops cached principals holding the old credential.
    project.save(update_fields=["updated_at"])
    audit_record(by=by, action="update" if before else "create", instance=credential, before=before,
                 after=snapshot(credential))
    return credential


@transaction.atomic
def project_credential_delete(*, by: Actor, project: Project, provider: str) -> None:
    _require_project_admin(by, project)
    credential = ProjectCredential.objects.filter(project=project, provider=provider.strip().lower()).first()
    if credential is None:
        return
    before, pk = snapshot(credential), credential.pk
    credential.delete()
    project.save(update_fields=["updated_at"])
    audit_record(by=by, action="delete", instance=credential, before=before, entity_id=str(pk))
