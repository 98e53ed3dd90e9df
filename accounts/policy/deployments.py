"""Who manages model deployments, which models a caller is shown, and which environment variables a
deployment added at run time may name.

- Adding, changing and deleting deployments is a proxy admin's (the API, the admin, commands).
- Listings (/model/info) show a proxy admin every deployment with its upstream details but never a
  secret; everyone else only the models they may use, without upstream details (issue 16.8).
- `os.environ/NAME` in a deployment created at run time may name only a variable the operator
  listed in the config's `general_settings.allowed_env_references` (empty by default): otherwise
  whoever may add a model could send any variable of the process (the master key, the database
  URL) to a host of their choosing (issue 16.7). Literal keys are stored encrypted instead.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from django.conf import settings

from accounts.models import VirtualKey
from accounts.policy.actor import Actor
from accounts.policy.scopes import forbidden
from llmur.core.errors import LlmurError

ENV_PREFIX = "os.environ/"
# Allow-list entries that mean "every model", as LiteLLM writes them.
ALL_MODELS = frozenset({"*", "all-proxy-models"})
# What of a deployment a caller below proxy admin is shown: its name, the upstream model name,
# and model_info without anything that looks like a secret.
_SECRET_NAMES = re.compile(r"(password|secret|api_key|key_hash|encrypted|token|credential|private|header)", re.I)


def can_manage_models(actor: Actor) -> bool:
    return actor.is_proxy_admin


def require_may_manage_models(actor: Actor, what: str) -> None:
    if not can_manage_models(actor):
        raise forbidden(f"Only a proxy admin may {what}.")


def can_see_upstream(actor: Actor) -> bool:
    return actor.is_proxy_admin


# --------------------------------------------------------------------------- environment references

def allowed_env_references() -> frozenset[str]:
    return frozenset(settings.LLMUR.config.allowed_env_references)


def _references(value: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        yield path, value[len(ENV_PREFIX):]
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _references(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _references(item, f"{path}.{index}")


def check_env_references(params: dict[str, Any]) -> None:
    """400 for any os.environ/NAME in the params whose NAME the operator did not allow."""
    allowed = allowed_env_references()
    for path, name in _references(params, "litellm_params"):
        if name not in allowed:
            listed = ", ".join(sorted(allowed)) or "none"
            raise LlmurError(
                400, "invalid_request_error",
                f"{path}: os.environ/{name} is not allowed. A deployment added at run time may read only the "
                f"environment variables listed in the config's general_settings.allowed_env_references (now: "
                f"{listed}); send the key itself instead (it is stored encrypted), or ask the operator to list "
                f"{name}.", param=path, code="400")


# --------------------------------------------------------------------------- which models a caller may use

def allowed_models_of(*entities: Any) -> frozenset[str] | None:
    """Intersection of the entities' non-empty allow-lists; None when none restricts."""
    result: frozenset[str] | None = None
    for entity in entities:
        models = getattr(entity, "allowed_models", None) if entity is not None else None
        if not models or ALL_MODELS & set(models):
            continue
        result = frozenset(models) if result is None else result & frozenset(models)
    return result


def usable_model_names(actor: Actor) -> frozenset[str] | None:
    """The model names the actor may call (None: every model): their calling key's allow-lists with its owners'."""
    if actor.is_proxy_admin:
        return None
    if actor.key_id is not None:
        key = (VirtualKey.objects.select_related("user", "team", "team__organization", "project",
                                                 "project__team", "organization")
               .filter(pk=actor.key_id).first())
        if key is None:
            return frozenset()
        team = key.team or (key.project.team if key.project else None)
        organization = key.organization or (team.organization if team else None)
        return allowed_models_of(key, key.user, key.project, team, organization)
    return allowed_models_of(actor.user)


def models_shown_to(actor: Actor, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """/model/info rows (secrets already masked) as this actor may see them."""
    if can_see_upstream(actor):
        return rows
    usable = usable_model_names(actor)
    out = []
    for row in rows:
        if usable is not None and row["model_name"] not in usable:
            continue
        params = row.get("litellm_params") or {}
        info = {k: v for k, v in (row.get("model_info") or {}).items() if not _SECRET_NAMES.search(str(k))}
        out.append({"model_name": row["model_name"], "litellm_params": {"model": params.get("model")},
                    "model_info": info})
    return out
