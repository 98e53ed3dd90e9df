"""Invalidate cached auth snapshots and deployment lists when the rows behind them change.

Connected in GatewayConfig.ready(). Every save or delete of a key, its owners, memberships or
project credentials (and of end users) bumps the shared "auth version" in Redis after the transaction commits;
each worker polls it (gateway.auth) and drops its local cache within 250 ms. In embedded mode
(no Redis) the one process clears its cache directly.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from accounts.models import (
    EndUser,
    Organization,
    OrganizationMembership,
    Project,
    ProjectCredential,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)
from gateway import auth, registry
from gateway.models import ModelDeployment
from gateway.versions import bump_version

logger = logging.getLogger("llmur.gateway.signals")


def auth_changed() -> None:
    """Make every worker forget cached key snapshots (after the current transaction commits)."""
    def publish() -> None:
        # Bump first: the cleared cache re-reads the version on its next request and must see the new one.
        if settings.LLMUR.cache.engine == "redis":
            bump_version(auth.AUTH_VERSION_KEY)
        auth.cache_clear()

    transaction.on_commit(publish)


def _on_change(sender, **kwargs) -> None:
    auth_changed()


def _on_deployment_change(sender, instance, **kwargs) -> None:
    # Config-file deployments are mirrored at start-up; only database-added ones change the registry.
    if getattr(instance, "source", None) == "db":
        transaction.on_commit(registry.deployments_changed)


def connect() -> None:
    for model in (VirtualKey, User, Team, Project, Organization, ProjectCredential, TeamMembership,
                  OrganizationMembership, EndUser):
        uid = f"llmur-auth-{model.__name__}"
        post_save.connect(_on_change, sender=model, dispatch_uid=uid + "-save")
        post_delete.connect(_on_change, sender=model, dispatch_uid=uid + "-delete")
    m2m_changed.connect(_on_change, sender=Team.members.through, dispatch_uid="llmur-auth-team-members")
    post_save.connect(_on_deployment_change, sender=ModelDeployment, dispatch_uid="llmur-deployments-save")
    post_delete.connect(_on_deployment_change, sender=ModelDeployment, dispatch_uid="llmur-deployments-delete")
