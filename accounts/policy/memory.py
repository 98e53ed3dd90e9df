"""Whose cross-session memory an actor may list, read and delete (docs/memory.md).

Summaries say what people worked on, so the rule is the spend rule's (accounts.policy.spend)
without its read-only widening: proxy admins everything; team and organization admins what the
keys of their teams and organizations remembered; a user what their own keys remembered.
"""
from __future__ import annotations

from django.db.models import Q

from accounts.policy.actor import Actor
from llmur.core.errors import LlmurError


def memory_scope(actor: Actor) -> Q | None:
    """A filter on memory rows (their key_id/user_id/team_id/organization_id columns), or None for all."""
    if actor.is_proxy_admin:
        return None
    if actor.user is None:
        return Q(pk__in=[])
    return (Q(team_id__in=actor.admin_team_ids) | Q(organization_id__in=actor.admin_org_ids)
            | Q(user_id=actor.user.pk))


def require_may_forget_end_users(actor: Actor) -> None:
    """A privacy request spans every scope an end user appears in: someone who administers none may not make it."""
    if actor.is_proxy_admin or (actor.user is not None and (actor.admin_team_ids or actor.admin_org_ids)):
        return
    raise LlmurError(403, "permission_error", "Only proxy admins and team or organization admins may delete an end "
                     "user's memory.", code="403")
