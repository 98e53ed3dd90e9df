"""Writes on virtual keys: issue, change (owners only tighten), block, regenerate, delete."""
from __future__ import annotations

import copy
import datetime as dt
from typing import Any, Iterable

from django.db import transaction

from accounts import policy
from accounts.audit import audit_record, snapshot
from accounts.keys import KEY_PREFIX, key_digest, key_display, key_generate
from accounts.models import Organization, Project, Team, User, VirtualKey
from accounts.policy import Actor
from accounts.services.common import (
    BUDGET_FIELDS,
    apply_budget,
    apply_common_fields,
    budget_values,
    delete_audited,
    invalid,
    locked_for_update,
    parse_aliases,
    parse_memory,
    parse_models,
    save_created,
    save_update,
)


@transaction.atomic
def key_create(*, by: Actor, key_alias: str = "", user: User | None = None, team: Team | None = None,
               project: Project | None = None, organization: Organization | None = None,
               models: Any = None, expires_at: dt.datetime | None = None, metadata: dict | None = None,
               key: str | None = None, blocked: bool = False, aliases: Any = None, log_requests: bool = False,
               memory: Any = None,
               **budget: Any) -> tuple[VirtualKey, str]:
    """Issues a key and returns it with its plaintext, which exists nowhere else afterwards."""
    unknown = set(budget) - set(BUDGET_FIELDS)
    if unknown:
        raise TypeError(f"unknown key fields: {', '.join(sorted(unknown))}")
    if key is not None:
        if not key.startswith(KEY_PREFIX) or len(key) < 20 or any(c.isspace() for c in key):
            raise invalid("A custom key must start with sk- and be at least 20 characters, without spaces.", "key")
        plaintext = key
    else:
        plaintext = key_generate()
    if project is not None and organization is None and team is None:
        team = project.team
    if team is not None and organization is None:
        organization = team.organization
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata must be a JSON object.", "metadata")
    vk = VirtualKey(key_hash=key_digest(plaintext), display=key_display(plaintext), key_alias=key_alias or "",
                    user=user, team=team, project=project, organization=organization,
                    allowed_models=parse_models(models), expires_at=expires_at, metadata=metadata or {},
                    blocked=blocked, aliases=parse_aliases(aliases), log_requests=bool(log_requests),
                    memory=parse_memory(memory))
    apply_budget(vk, budget_values(budget))
    policy.require_may_create_key(by, vk)
    policy.check_within(vk, policy.key_parents(vk), what="key")
    if VirtualKey.objects.filter(key_hash=vk.key_hash).exists():
        raise invalid("This key already exists; choose another custom key.", "key")
    save_created(by=by, instance=vk)
    return vk, plaintext


KEY_UPDATABLE = {"key_alias", "models", "metadata", "expires_at", "blocked", "team", "user", "project",
                 "organization", "aliases", "log_requests", "memory", *BUDGET_FIELDS}


@transaction.atomic
def key_update(*, by: Actor, key: VirtualKey, **fields: Any) -> VirtualKey:
    """Changes the fields given; an owner may only tighten their key, an admin of its scope anything within it."""
    key, before = locked_for_update(key, fields, updatable=KEY_UPDATABLE, what="key")
    unchanged = copy.copy(key)
    if "key_alias" in fields:
        key.key_alias = fields["key_alias"] or ""
    if "metadata" in fields and fields["metadata"] is not None and not isinstance(fields["metadata"], dict):
        raise invalid("metadata must be a JSON object.", "metadata")
    for name in ("expires_at", "blocked", "team", "user", "project", "organization"):
        if name in fields:
            setattr(key, name, fields[name])
    apply_common_fields(key, fields)
    policy.require_may_change_key(by, unchanged, key)
    policy.check_within(key, policy.key_parents(key), what="key")
    save_update(by=by, instance=key, before=before)
    return key


@transaction.atomic
def key_set_blocked(*, by: Actor, key: VirtualKey, blocked: bool) -> VirtualKey:
    """Blocks or unblocks; an ordinary save, so the gateway's signal revokes cached copies at once.

    An owner may block their key; unblocking takes an admin of its scope (issue 16.5).
    """
    key = VirtualKey.objects.select_for_update().get(pk=key.pk)
    before, unchanged = snapshot(key), copy.copy(key)
    key.blocked = blocked
    policy.require_may_change_key(by, unchanged, key)
    key.save(update_fields=["blocked", "updated_at"])
    audit_record(by=by, action="block" if blocked else "unblock", instance=key, before=before, after=snapshot(key))
    return key


def key_block(*, by: Actor, key: VirtualKey) -> VirtualKey:
    return key_set_blocked(by=by, key=key, blocked=True)


def key_unblock(*, by: Actor, key: VirtualKey) -> VirtualKey:
    return key_set_blocked(by=by, key=key, blocked=False)


def _require_owner_or_admin(by: Actor, key: VirtualKey) -> None:
    if policy.key_rights(by, key) < policy.KeyRights.OWNER:
        raise policy.forbidden("You may read this key but not change it.")


@transaction.atomic
def key_delete(*, by: Actor, key: VirtualKey) -> None:
    _require_owner_or_admin(by, key)
    delete_audited(by=by, instance=key)


def delete_with_keys(*, by: Actor, instance: Any, keys: Iterable[VirtualKey]) -> None:
    """Deletes the keys (each by key_delete: the caller's right to it checked, its deletion audited), then the owner."""
    for key in keys:
        key_delete(by=by, key=key)
    delete_audited(by=by, instance=instance)


@transaction.atomic
def key_delete_many(*, by: Actor, keys: Iterable[VirtualKey]) -> None:
    """/key/delete: every key or none."""
    for key in keys:
        key_delete(by=by, key=key)


@transaction.atomic
def key_regenerate(*, by: Actor, key: VirtualKey, new_key: str | None = None) -> tuple[VirtualKey, str]:
    """Replaces the key's secret and keeps everything else; the old secret stops working at once."""
    key = VirtualKey.objects.select_for_update().get(pk=key.pk)
    _require_owner_or_admin(by, key)
    before = snapshot(key)
    if new_key is not None and (not new_key.startswith(KEY_PREFIX) or len(new_key) < 20):
        raise invalid("A custom key must start with sk- and be at least 20 characters.", "new_key")
    plaintext = new_key or key_generate()
    key.key_hash, key.display = key_digest(plaintext), key_display(plaintext)
    if VirtualKey.objects.filter(key_hash=key.key_hash).exclude(pk=key.pk).exists():
        raise invalid("This key already exists; choose another custom key.", "new_key")
    key.save(update_fields=["key_hash", "display", "updated_at"])
    audit_record(by=by, action="regenerate", instance=key, before=before, after=snapshot(key))
    return key, plaintext
