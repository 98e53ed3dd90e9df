"""Management API for keys, users, teams, organizations and projects, on LiteLLM's paths and field names.

Handlers are sync (ninja runs them in a worker thread, off the event loop): look entities up through
accounts.policy (404 for what the caller may not see), call one service (which asks the policy
whether the caller may make the write), shape the answer. Callers authenticate with a master key
or with the virtual key of a user who has a role (a key with no user only on the few routes that
answer it about itself). docs/security.md lists the rules; one module per entity registers its routes.
"""
from accounts.api import (  # noqa: F401  (registers the routes)
    budgets,
    end_users,
    keys,
    members,
    organizations,
    projects,
    teams,
    users,
)
from accounts.api.common import management_auth, router, self_key_auth

__all__ = ["management_auth", "router", "self_key_auth"]
