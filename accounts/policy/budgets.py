"""End users and shared budgets: who may see and change them.

Both are proxy-wide (an end user is named by any key's requests; a budget may be referenced by any
key, team, organization or end user), so both belong to proxy admins: reads and writes alike, and
referencing a budget from a key, team or organization too. Everyone else gets 403 with the same
message whether the object exists or not, so nothing is disclosed (16.12). LiteLLM lets any key
call /customer/*; this is the safe rule that keeps its scripts working under the master key.
"""
from __future__ import annotations

from accounts.policy.actor import Actor
from accounts.policy.scopes import require_proxy_admin


def require_may_manage_end_users(actor: Actor) -> None:
    require_proxy_admin(actor, "see or change end users (customers)")


def require_may_manage_budgets(actor: Actor) -> None:
    require_proxy_admin(actor, "see or change budgets")


def require_may_reference_budget(actor: Actor) -> None:
    """Giving a key, team or organization a shared budget (budget_id)."""
    require_proxy_admin(actor, "give an entity a shared budget (budget_id)")
