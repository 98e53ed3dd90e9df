"""Value parsing and the save, update, membership and delete steps every service shares."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone

from accounts import durations
from accounts.audit import audit_record, snapshot
from accounts.models import Budgeted
from accounts.policy import Actor, require_may_add_member
from accounts.policy.limits import LIMIT_FIELDS
from llmur.core.errors import LlmurError

BUDGET_FIELDS = ("max_budget", "soft_budget", "budget_duration", *LIMIT_FIELDS)
PROVIDERS = ("openai", "azure", "anthropic", "ollama")


def invalid(message: str, param: str | None = None) -> LlmurError:
    return LlmurError(400, "invalid_request_error", message, param=param, code="400")


# --------------------------------------------------------------------------- value parsing

def parse_duration(value: Any, *, param: str) -> dt.timedelta:
    """A duration (accounts.durations), or a 400 naming the parameter."""
    period = durations.parse_duration(str(value))
    if period is None:
        raise invalid(f"{param} must be a number and a unit such as {durations.EXAMPLES}; got {value!r}.", param)
    return period


def parse_money(value: Any, *, param: str) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise invalid(f"{param} must be a number of US dollars, e.g. 10 or 2.5.", param) from None
    if not amount.is_finite() or amount < 0:
        raise invalid(f"{param} must be zero or more.", param)
    return amount


def parse_limit(value: Any, *, param: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) and not str(value).isdigit():
        raise invalid(f"{param} must be a whole number of zero or more.", param)
    number = int(value)
    if number < 0:
        raise invalid(f"{param} must be a whole number of zero or more.", param)
    return number


def parse_models(value: Any, *, param: str = "models") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [m for m in (p.strip() for p in value.split(",")) if m]
    if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) and m.strip() for m in value):
        raise invalid(f"{param} must be a list of model names.", param)
    # "all-proxy-models" is LiteLLM's spelling of "no restriction".
    names = [m.strip() for m in value if m.strip() != "all-proxy-models"]
    return list(dict.fromkeys(names))


def parse_public_id(value: Any, *, param: str) -> str | None:
    """A client-chosen team_id / organization_id: any string up to 200 characters; None when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise invalid(f"{param} must be a string.", param)
    text = str(value)
    if text != text.strip() or len(text) > 200 or any(not c.isprintable() for c in text):
        raise invalid(f"{param} must be up to 200 printable characters, without surrounding spaces.", param)
    return text


def parse_aliases(value: Any, *, param: str = "aliases") -> dict[str, str]:
    """A model alias map: requested name → model group (gateway/aliases.py)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
                                              for k, v in value.items()):
        raise invalid(f'{param} must map alias names to model groups, e.g. {{"fast": "gpt-4o-mini"}}.', param)
    return {k.strip(): v.strip() for k, v in value.items()}


def parse_expiry(*, expires: Any = None, duration: Any = None) -> dt.datetime | None:
    if expires not in (None, ""):
        if isinstance(expires, dt.datetime):
            moment = expires
        else:
            try:
                moment = dt.datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
            except ValueError:
                raise invalid("expires must be an ISO 8601 date-time, e.g. 2030-01-31T00:00:00Z.", "expires") from None
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment, dt.timezone.utc)
    if duration not in (None, ""):
        return timezone.now() + parse_duration(duration, param="duration")
    return None


def budget_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Validated budget/limit fields from a dict of raw values (only the keys present)."""
    out: dict[str, Any] = {}
    for name in ("max_budget", "soft_budget"):
        if name in fields:
            out[name] = parse_money(fields[name], param=name)
    if "budget_duration" in fields:
        raw = str(fields["budget_duration"] or "").strip()
        if raw:
            parse_duration(raw, param="budget_duration")
        out["budget_duration"] = raw
    for name in LIMIT_FIELDS:
        if name in fields:
            out[name] = parse_limit(fields[name], param=name)
    return out


def apply_budget(entity: Budgeted, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(entity, name, value)
    if "budget_duration" in values:
        entity.budget_reset_at = (timezone.now() + parse_duration(entity.budget_duration, param="budget_duration")
                                  if entity.budget_duration else None)


def locked_for_update(instance: Any, fields: dict[str, Any], *, updatable: set[str], what: str) -> tuple[Any, dict]:
    """The entity's row, locked for this transaction, and its snapshot before the update (for the audit)."""
    unknown = set(fields) - updatable
    if unknown:
        raise TypeError(f"unknown {what} fields: {', '.join(sorted(unknown))}")
    locked = type(instance).objects.select_for_update().get(pk=instance.pk)
    return locked, snapshot(locked)


def save_created(*, by: Actor, instance: Any) -> None:
    """Saves a new entity (validated) and audits its creation."""
    save_validated(instance)
    audit_record(by=by, action="create", instance=instance, after=snapshot(instance))


def save_update(*, by: Actor, instance: Any, before: dict) -> None:
    save_validated(instance)
    audit_record(by=by, action="update", instance=instance, before=before, after=snapshot(instance))


def apply_common_fields(entity: Budgeted, fields: dict[str, Any]) -> None:
    """The update fields every entity treats alike: models, metadata, aliases, log_requests and the budget.

    Only the keys present in `fields` are touched; what differs per entity (name, flags, parents) stays
    with its own `<entity>_update`.
    """
    if "models" in fields:
        entity.allowed_models = parse_models(fields["models"])
    if "metadata" in fields:
        entity.metadata = fields["metadata"] or {}
    if "aliases" in fields:
        entity.aliases = parse_aliases(fields["aliases"])
    if "log_requests" in fields:
        entity.log_requests = bool(fields["log_requests"])
    if "memory" in fields:
        entity.memory = parse_memory(fields["memory"])
    apply_budget(entity, budget_values({k: v for k, v in fields.items() if k in BUDGET_FIELDS}))


# The keys of a `memory` block (docs/memory.md) and their types; the config's memory: block has the same.
MEMORY_KEYS = {"enabled": bool, "summarizer_model": str, "max_injected_tokens": int, "idle_minutes": int,
               "retention_days": int}


def parse_memory(value: Any) -> dict[str, Any]:
    """A key's, project's or team's memory settings, checked: a 400 naming what is wrong."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise invalid('memory: expected an object such as {"enabled": true}.', "memory")
    for name, item in value.items():
        kind = MEMORY_KEYS.get(name)
        if kind is None:
            raise invalid(f"memory: unknown setting {str(name)[:50]!r} (expected {', '.join(MEMORY_KEYS)}).", "memory")
        if not isinstance(item, kind) or (kind is int and (isinstance(item, bool) or item < 1)):
            raise invalid(f"memory.{name}: expected {'a positive integer' if kind is int else kind.__name__}.",
                          "memory")
    return dict(value)


def save_validated(instance: Any, **kwargs: Any) -> None:
    """The model's own validation, then save; what fails is a 400 naming the field."""
    try:
        instance.full_clean(exclude=["password", "key_hash", "display", "encrypted_api_key"]
                            + [f for f in ("team", "organization", "project", "user")
                               if hasattr(instance, f + "_id")], validate_unique=False,
                            validate_constraints=False)
        instance.save(**kwargs)
    except IntegrityError:
        raise invalid(f"A {instance._meta.verbose_name} with these values already exists.") from None
    except ValidationError as exc:  # phrased for the caller
        field, messages = next(iter(exc.message_dict.items())) if hasattr(exc, "message_dict") else ("", exc.messages)
        raise invalid(f"{field}: {' '.join(messages)}" if field else " ".join(messages), field or None) from None


def membership_set(*, by: Actor, model: type[Any], role: str, place: str, user: Any, **where: Any) -> Any:
    """Adds the person's membership of `where` or changes its role; audited only when something changed.

    A new membership follows policy.require_may_add_member (no pulling in people from teams one does
    not run, issue 16.2); `place` names where, for its refusal.
    """
    if not model.objects.filter(user=user, **where).exists():
        require_may_add_member(by, user, where=place)
    membership, created = model.objects.get_or_create(user=user, **where, defaults={"role": role})
    if not created and membership.role == role:
        return membership  # nothing changed, nothing to audit
    before = None if created else snapshot(membership)
    if not created:
        membership.role = role
        membership.save(update_fields=["role"])
    audit_record(by=by, action="create" if created else "update", instance=membership, before=before,
                 after=snapshot(membership))
    return membership


def changed_values(entity: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Only the values that differ (an unchanged budget_duration must not restart the period)."""
    return {k: v for k, v in values.items() if getattr(entity, k) != v}


def delete_audited(*, by: Actor, instance: Any) -> None:
    before, pk = snapshot(instance), instance.pk  # the pk is gone from the instance after delete()
    instance.delete()
    audit_record(by=by, action="delete", instance=instance, before=before, entity_id=str(pk))
