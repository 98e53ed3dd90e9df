"""Whose spend an actor may see: the one rule behind /spend/logs, /global/spend/report, the admin's
ledger pages and its dashboard."""
from __future__ import annotations

from django.db.models import Q

from accounts.policy.actor import Actor


def spend_scope(actor: Actor) -> Q | None:
    """A filter on spend rows (SpendLog, DailySpend: key/user/team/organization columns), or None for all.

    Proxy admins see all spend; everyone else what they administer plus their own.
    """
    if actor.is_proxy_admin:
        return None
    scope = Q(team_id__in=actor.admin_team_ids) | Q(organization_id__in=actor.admin_org_ids)
    if actor.user is not None:
        scope |= Q(user_id=actor.user.pk)
    return scope


def spend_scope_id(actor: Actor) -> str:
    """A stable name for the actor's spend scope, for caches shared by everyone who sees the same spend."""
    if actor.is_proxy_admin:
        return "all"
    return (f"teams={sorted(actor.admin_team_ids)};orgs={sorted(actor.admin_org_ids)};"
            f"user={actor.user.pk if actor.user else None}")
