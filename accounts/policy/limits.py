"""Limits that nest: what an entity may be given inside the entities above it, and what loosens a key.

Every budget, limit and allow-list fits inside the ones above it (a key inside its user, team,
project and organization; a team inside its organization), whoever writes it: the API, the admin
or a command, a proxy admin included. Changing a key is tightening when it only lowers budgets and
limits, removes models, blocks it, shortens its life or turns its request log on; everything else
loosens it (issue 16.5), and loosening takes an admin of the key's scope.
"""
from __future__ import annotations

from typing import Any, Iterable

from accounts.models import VirtualKey
from llmur.core.errors import LlmurError

LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "max_parallel_requests")
CEILING_FIELDS = ("max_budget", *LIMIT_FIELDS)
OWNER_FIELDS = ("user", "team", "project", "organization")


def _invalid(message: str, param: str) -> LlmurError:
    return LlmurError(400, "invalid_request_error", message, param=param, code="400")


def check_within(entity: Any, parents: Iterable[Any], *, what: str) -> None:
    """The entity's models, budget and limits must fit inside every entity above it (400 naming which)."""
    for parent in parents:
        if parent is None:
            continue
        kind = parent._meta.verbose_name
        name = str(parent)
        allowed = set(getattr(parent, "allowed_models", []) or [])
        own = set(getattr(entity, "allowed_models", []) or [])
        if allowed and own - allowed:
            extra = ", ".join(sorted(own - allowed))
            raise _invalid(f"The {what} may not use {extra}: {kind} {name!r} only allows {', '.join(sorted(allowed))}.",
                           "models")
        for field in CEILING_FIELDS:
            ceiling, value = getattr(parent, field), getattr(entity, field)
            if ceiling is not None and value is not None and value > ceiling:
                raise _invalid(f"The {what}'s {field} ({value}) is above the {field} of {kind} {name!r} ({ceiling}).",
                               field)


def key_parents(key: VirtualKey) -> list[Any]:
    return [key.user, key.team, key.project, key.organization]


def _raised(before: Any, after: Any) -> bool:
    """A ceiling (None = none) was lifted or raised."""
    return before is not None and (after is None or after > before)


def loosened_fields(before: VirtualKey, after: VirtualKey) -> list[str]:
    """The fields whose change gives the key more than it had (empty when the change only tightens)."""
    out = [name for name in ("max_budget", "soft_budget", *LIMIT_FIELDS)
           if _raised(getattr(before, name), getattr(after, name))]
    old_models, new_models = set(before.allowed_models or []), set(after.allowed_models or [])
    if old_models and (not new_models or new_models - old_models):
        out.append("models")
    if before.blocked and not after.blocked:
        out.append("blocked")
    if _raised(before.expires_at, after.expires_at):
        out.append("expires")
    if (before.budget_duration or "") != (after.budget_duration or ""):
        out.append("budget_duration")   # a different period gives a different allowance
    old_aliases, new_aliases = before.aliases or {}, after.aliases or {}
    if any(old_aliases.get(name) != target for name, target in new_aliases.items()):
        out.append("aliases")
    if before.log_requests and not after.log_requests:
        out.append("log_requests")
    out += [f"{name}_id" for name in OWNER_FIELDS if getattr(before, f"{name}_id") != getattr(after, f"{name}_id")]
    return out
