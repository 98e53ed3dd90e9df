"""Writes on organizations and their memberships."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts import policy
from accounts.models import Organization, OrganizationMembership, User, VirtualKey
from accounts.policy import Actor
from accounts.services.common import (
    BUDGET_FIELDS,
    apply_budget,
    apply_common_fields,
    budget_values,
    delete_audited,
    invalid,
    locked_for_update,
    membership_set,
    parse_models,
    parse_public_id,
    save_created,
    save_update,
)
from accounts.services.keys import delete_with_keys
from accounts.services.users import user_get_or_create_member
from llmur.core.errors import LlmurError


@transaction.atomic
def organization_create(*, by: Actor, name: str | None = "", organization_id: str | None = None,
                        models: Any = None, metadata: dict | None = None, **budget: Any) -> Organization:
    """An organization under the public id the client chose (a UUID when omitted); the alias may repeat."""
    policy.require_proxy_admin(by, "create organizations")
    public_id = parse_public_id(organization_id, param="organization_id")
    if public_id is not None and Organization.objects.filter(public_id=public_id).exists():
        raise invalid(f"An organization with organization_id {public_id!r} already exists.", "organization_id")
    org = Organization(name=(name or "").strip(), allowed_models=parse_models(models), metadata=metadata or {})
    if public_id is not None:
        org.public_id = public_id
    apply_budget(org, budget_values(budget))
    save_created(by=by, instance=org)
    return org


ORGANIZATION_UPDATABLE = {"name", "models", "metadata", "blocked", *BUDGET_FIELDS}


@transaction.atomic
def organization_update(*, by: Actor, organization: Organization, **fields: Any) -> Organization:
    policy.require_may_change_organization(by, organization, fields)
    org, before = locked_for_update(organization, fields, updatable=ORGANIZATION_UPDATABLE, what="organization")
    if fields.get("name"):
        org.name = fields["name"]
    if "blocked" in fields:
        org.blocked = bool(fields["blocked"])
    apply_common_fields(org, fields)
    save_update(by=by, instance=org, before=before)
    return org


@transaction.atomic
def organization_delete(*, by: Actor, organization: Organization) -> None:
    """Deletes an organization that no team or project belongs to any more."""
    policy.require_proxy_admin(by, "delete organizations")
    if organization.teams.exists() or organization.projects.exists():
        raise invalid(f"Organization {organization.name!r} still has teams or projects; delete or move them first.",
                      "organization_id")
    own_keys = VirtualKey.objects.filter(organization=organization, team__isnull=True, project__isnull=True)
    delete_with_keys(by=by, instance=organization, keys=own_keys)


@transaction.atomic
def organization_delete_many(*, by: Actor, organizations: list[Organization]) -> None:
    """/organization/delete: every organization or none."""
    for organization in organizations:
        organization_delete(by=by, organization=organization)


@transaction.atomic
def organization_member_set(*, by: Actor, organization: Organization, user: User, role: str) -> OrganizationMembership:
    if role not in OrganizationMembership.OrgRole.values:
        raise invalid(f"Unknown organization role {role!r} (expected org_admin or member).", "role")
    if not policy.can_manage_org(by, organization):
        raise policy.forbidden(f"Only an admin of organization {organization.public_id!r} may add members.")
    return membership_set(by=by, model=OrganizationMembership, role=role, place=f"organization {organization.name!r}",
                          organization=organization, user=user)


@transaction.atomic
def organization_member_delete(*, by: Actor, organization: Organization, user: User) -> None:
    if not policy.can_manage_org(by, organization):
        raise policy.forbidden(f"Only an admin of organization {organization.public_id!r} may remove members.")
    membership = OrganizationMembership.objects.filter(organization=organization, user=user).first()
    if membership is None:
        raise LlmurError(404, "not_found_error",
                         f"{user.username!r} is not a member of organization {organization.name!r}.",
                         param="user_id", code="404")
    delete_audited(by=by, instance=membership)


@transaction.atomic
def organization_members_set(*, by: Actor, organization: Organization,
                             members: list[tuple[str | None, str | None, str]]) -> None:
    """/organization/member_add: (user_id, user_email, role) each, all or none."""
    for user_id, user_email, role in members:
        user = user_get_or_create_member(by=by, user_id=user_id, user_email=user_email)
        organization_member_set(by=by, organization=organization, user=user, role=role)
