"""The audit trail: one AuditEntry per create, update or delete, with secrets masked in the snapshots."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import models

from accounts.models import AuditEntry

if TYPE_CHECKING:
    from accounts.policy import Actor

MASK = "***"
# Field names whose values never reach the audit log, however they are nested.
_SECRET_NAMES = re.compile(r"(password|secret|api_key|key_hash|encrypted|token|credential|private)", re.I)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, models.Model):
        return value.pk
    return value


def masked(value: Any, name: str = "") -> Any:
    """A JSON-safe copy with every secret-looking field replaced by ***."""
    if isinstance(value, dict):
        return {str(k): masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [masked(v, name) for v in value]
    if name and _SECRET_NAMES.search(name) and value not in (None, "", {}, []):
        return MASK
    return _plain(value)


def snapshot(instance: models.Model | None) -> dict[str, Any] | None:
    """The instance's concrete fields as a masked, JSON-safe dict (foreign keys as ids)."""
    if instance is None:
        return None
    data: dict[str, Any] = {}
    for f in instance._meta.concrete_fields:
        name = f.attname
        if name in ("last_login",):
            continue
        data[f.name if not f.is_relation else f.name + "_id"] = getattr(instance, name)
    return masked(data)


def audit_record(*, by: "Actor", action: str, instance: models.Model, before: dict | None = None,
                 after: dict | None = None, entity_id: str | None = None) -> AuditEntry:
    """Writes one entry; call inside the same transaction as the change, so both commit or neither."""
    return AuditEntry.objects.create(
        actor=by.label[:200], actor_user=by.user, source=by.source, action=action,
        entity_type=instance._meta.model_name, entity_id=str(entity_id or instance.pk),
        entity_repr=str(instance)[:200], before=before, after=after,
    )


def changed(before: dict | None, after: dict | None) -> bool:
    return before != after
