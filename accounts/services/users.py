"""Writes on people: create, change (their own account or a proxy admin's), delete."""
from __future__ import annotations

import uuid
from typing import Any, Iterable

from django.db import transaction

from accounts import policy
from accounts.models import Role, User, VirtualKey
from accounts.policy import Actor
from accounts.services.common import (
    BUDGET_FIELDS,
    apply_budget,
    apply_common_fields,
    budget_values,
    invalid,
    locked_for_update,
    parse_models,
    save_created,
    save_update,
)
from accounts.services.keys import delete_with_keys
from llmur.core.errors import LlmurError


def user_id_new() -> str:
    """A user_id for /user/new when the caller gave none, as LiteLLM generates one."""
    return str(uuid.uuid4())


@transaction.atomic
def user_create(*, by: Actor, username: str, email: str = "", role: str = Role.INTERNAL_USER,
                models: Any = None, metadata: dict | None = None, password: str | None = None,
                is_staff: bool | None = None, **budget: Any) -> User:
    username = (username or "").strip()
    if not username:
        raise invalid("user_id must not be empty.", "user_id")
    policy.require_grantable_role(by, role)
    if not by.is_proxy_admin and (models or any(v not in (None, "") for v in budget.values())):
        raise policy.forbidden("Only a proxy admin may set a user's own budget, limits or models.")
    if User.objects.filter(username=username).exists():
        raise invalid(f"A user with user_id {username!r} already exists.", "user_id")
    user = User(username=username, email=email or "", role=role, allowed_models=parse_models(models),
                metadata=metadata or {}, is_staff=bool(is_staff) if is_staff is not None else role != Role.VIEWER
                and role != Role.INTERNAL_USER)
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    apply_budget(user, budget_values(budget))
    save_created(by=by, instance=user)
    return user


USER_UPDATABLE = {"username", "first_name", "last_name", "email", "role", "models", "metadata", "password",
                  "is_active", "is_staff", "is_superuser", *BUDGET_FIELDS}


@transaction.atomic
def user_update(*, by: Actor, user: User, **fields: Any) -> User:
    """Changes a person's account: a proxy admin's, or their own email, password and metadata (issue 16.2)."""
    policy.require_may_change_user(by, user, set(fields))
    user, before = locked_for_update(user, fields, updatable=USER_UPDATABLE, what="user")
    for name in ("username", "first_name", "last_name"):
        if fields.get(name) is not None:
            setattr(user, name, str(fields[name]).strip() if name == "username" else fields[name])
    if "email" in fields:
        user.email = fields["email"] or ""
    if "role" in fields and fields["role"]:
        if fields["role"] not in Role.values:
            raise invalid(f"Unknown user_role {fields['role']!r} (expected one of {', '.join(Role.values)}).",
                          "user_role")
        user.role = fields["role"]
    if "password" in fields:
        # A new password; none (the admin's "disable password-based authentication") unsets it.
        if fields["password"]:
            user.set_password(fields["password"])
        else:
            user.set_unusable_password()
    for flag in ("is_active", "is_staff", "is_superuser"):
        if flag in fields:
            setattr(user, flag, bool(fields[flag]))
    apply_common_fields(user, fields)
    save_update(by=by, instance=user, before=before)
    return user


@transaction.atomic
def user_delete(*, by: Actor, user: User) -> None:
    """Deletes the user and their personal keys (keys they hold for a team stay with the team)."""
    policy.require_proxy_admin(by, "delete users")
    personal = VirtualKey.objects.filter(user=user, team__isnull=True, project__isnull=True)
    delete_with_keys(by=by, instance=user, keys=personal)


@transaction.atomic
def user_delete_many(*, by: Actor, users: Iterable[User]) -> None:
    for user in users:
        user_delete(by=by, user=user)


def user_get_or_create_member(*, by: Actor, user_id: str | None, user_email: str | None) -> User:
    """The member named by user_id or email; as LiteLLM does, one that does not exist yet is created."""
    found = User.objects.filter(username=user_id).first() if user_id else None
    if found is None and user_email:
        found = User.objects.filter(email__iexact=user_email).first()
    if found is not None:
        return found
    if not (user_id or user_email):
        raise invalid("member needs user_id or user_email.", "member.user_id")
    return user_get_or_create(by=by, user_id=user_id or user_email or "", email=user_email or "")


def user_get_or_create(*, by: Actor, user_id: str, email: str = "") -> User:
    """The user with this user_id, created bare (internal user, no budget) when there is none yet.

    Race-safe: the create runs in a savepoint, and a concurrent request that created the same user
    first makes this one read it instead: the duplicate-key error comes once the other transaction
    committed, and a new read sees its row (read committed, Django's level on PostgreSQL and MySQL;
    a locking read here would deadlock MySQL transactions that share the duplicate's lock). Whether `by` may create people this way is the caller's to ask
    (policy.creates_users_implicitly; new team members follow the membership rules instead).
    """
    with transaction.atomic():
        found = User.objects.filter(username=user_id).first()
        if found is not None:
            return found
        try:
            with transaction.atomic():
                return user_create(by=by, username=user_id, email=email)
        except LlmurError:
            found = User.objects.filter(username=user_id).first()
            if found is None:
                raise
            return found


@transaction.atomic
def ui_admin_account(*, by: Actor) -> User:
    """The account a master-key sign-in to the admin uses (LiteLLM's UI login, `admin` + master key).

    Created on the first such sign-in as a proxy admin with no password of its own, so only the master key
    (or a password a proxy admin sets later) signs in as it; refused when `admin` is someone else's account.
    """
    if not by.is_master:
        raise policy.forbidden("Only the master key signs in as the admin account.")
    user = User.objects.select_for_update().filter(username=policy.UI_ADMIN_USERNAME).first()
    policy.require_ui_admin_account(user)
    if user is None:
        user = user_create(by=by, username=policy.UI_ADMIN_USERNAME, role=Role.PROXY_ADMIN, is_staff=True)
        user = user_update(by=by, user=user, is_superuser=True)
    return user
