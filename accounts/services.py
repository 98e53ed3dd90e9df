"""Writes on organizations, teams, users, projects and virtual keys.

Every function here is keyword-only, takes the acting :class:`~accounts.policy.Actor` as `by`, checks
the limits of the entities above the one it writes ("a key's budget fits in its team's"), saves with
ordinary model saves (so the gateway's post_save/post_delete signals invalidate cached keys on every
worker) and leaves one audit entry in the same transaction.

Whether `by` may make the write is asked of accounts.policy here, on the entity as it would be
saved (a key's final owners and limits, the fields a user update touches), so the management API,
the admin and the commands cannot disagree. Callers still look entities up through the policy
first, so that what an actor may not see answers 404 before anything else.
"""
from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import durations, policy
from accounts.audit import audit_record, snapshot
from accounts.keys import KEY_PREFIX, key_digest, key_display, key_generate, secret_encrypt
from accounts.models import (
    Budgeted,
    Organization,
    OrganizationMembership,
    Project,
    ProjectCredential,
    Role,
    Team,
    TeamMembership,
    User,
    VirtualKey,
)
from accounts.policy import Actor
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


def _budget_values(fields: dict[str, Any]) -> dict[str, Any]:
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


def _apply_budget(entity: Budgeted, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(entity, name, value)
    if "budget_duration" in values:
        entity.budget_reset_at = (timezone.now() + parse_duration(entity.budget_duration, param="budget_duration")
                                  if entity.budget_duration else None)


def _locked_for_update(instance: Any, fields: dict[str, Any], *, updatable: set[str], what: str) -> tuple[Any, dict]:
    """The entity's row, locked for this transaction, and its snapshot before the update (for the audit)."""
    unknown = set(fields) - updatable
    if unknown:
        raise TypeError(f"unknown {what} fields: {', '.join(sorted(unknown))}")
    locked = type(instance).objects.select_for_update().get(pk=instance.pk)
    return locked, snapshot(locked)


def _save_update(*, by: Actor, instance: Any, before: dict) -> None:
    _save(instance)
    audit_record(by=by, action="update", instance=instance, before=before, after=snapshot(instance))


def _apply_common_fields(entity: Budgeted, fields: dict[str, Any]) -> None:
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
    _apply_budget(entity, _budget_values({k: v for k, v in fields.items() if k in BUDGET_FIELDS}))


def _save(instance: Any, **kwargs: Any) -> None:
    try:
        instance.full_clean(exclude=["password", "key_hash", "display", "encrypted_api_key"]
                            + [f for f in ("team", "organization", "project", "user")
                               if hasattr(instance, f + "_id")], validate_unique=False,
                            validate_constraints=False)
        instance.save(**kwargs)
    except IntegrityError:
        raise invalid(f"A {instance._meta.verbose_name} with these values already exists.") from None
    except Exception as exc:  # django ValidationError: phrase it for the caller
        from django.core.exceptions import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        field, messages = next(iter(exc.message_dict.items())) if hasattr(exc, "message_dict") else ("", exc.messages)
        raise invalid(f"{field}: {' '.join(messages)}" if field else " ".join(messages), field or None) from None


def _membership_set(*, by: Actor, model: type[Any], role: str, **where: Any) -> Any:
    """Adds the membership or changes its role; audited only when something changed."""
    membership, created = model.objects.get_or_create(**where, defaults={"role": role})
    if not created and membership.role == role:
        return membership  # nothing changed, nothing to audit
    before = None if created else snapshot(membership)
    if not created:
        membership.role = role
        membership.save(update_fields=["role"])
    audit_record(by=by, action="create" if created else "update", instance=membership, before=before,
                 after=snapshot(membership))
    return membership


def _delete(*, by: Actor, instance: Any) -> None:
    before, pk = snapshot(instance), instance.pk  # the pk is gone from the instance after delete()
    instance.delete()
    audit_record(by=by, action="delete", instance=instance, before=before, entity_id=str(pk))


# --------------------------------------------------------------------------- keys

@transaction.atomic
def key_create(*, by: Actor, key_alias: str = "", user: User | None = None, team: Team | None = None,
               project: Project | None = None, organization: Organization | None = None,
               models: Any = None, expires_at: dt.datetime | None = None, metadata: dict | None = None,
               key: str | None = None, blocked: bool = False, aliases: Any = None, log_requests: bool = False,
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
                    blocked=blocked, aliases=parse_aliases(aliases), log_requests=bool(log_requests))
    _apply_budget(vk, _budget_values(budget))
    policy.require_may_create_key(by, vk)
    policy.check_within(vk, policy.key_parents(vk), what="key")
    if VirtualKey.objects.filter(key_hash=vk.key_hash).exists():
        raise invalid("This key already exists; choose another custom key.", "key")
    _save(vk)
    audit_record(by=by, action="create", instance=vk, after=snapshot(vk))
    return vk, plaintext


KEY_UPDATABLE = {"key_alias", "models", "metadata", "expires_at", "blocked", "team", "user", "project",
                 "organization", "aliases", "log_requests", *BUDGET_FIELDS}


@transaction.atomic
def key_update(*, by: Actor, key: VirtualKey, **fields: Any) -> VirtualKey:
    """Changes the fields given; an owner may only tighten their key, an admin of its scope anything within it."""
    key, before = _locked_for_update(key, fields, updatable=KEY_UPDATABLE, what="key")
    unchanged = copy.copy(key)
    if "key_alias" in fields:
        key.key_alias = fields["key_alias"] or ""
    if "metadata" in fields and fields["metadata"] is not None and not isinstance(fields["metadata"], dict):
        raise invalid("metadata must be a JSON object.", "metadata")
    for name in ("expires_at", "blocked", "team", "user", "project", "organization"):
        if name in fields:
            setattr(key, name, fields[name])
    _apply_common_fields(key, fields)
    policy.require_may_change_key(by, unchanged, key)
    policy.check_within(key, policy.key_parents(key), what="key")
    _save_update(by=by, instance=key, before=before)
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
    _delete(by=by, instance=key)


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


# --------------------------------------------------------------------------- users

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
    _apply_budget(user, _budget_values(budget))
    _save(user)
    audit_record(by=by, action="create", instance=user, after=snapshot(user))
    return user


@transaction.atomic
def user_onboard(*, by: Actor, username: str, teams: list[Team], organization: Organization | None = None,
                 key: dict[str, Any] | None = None, **fields: Any) -> tuple[User, VirtualKey | None, str | None]:
    """/user/new in one transaction: the user, their memberships and, when `key` is given, their first key.

    The key goes where the user was put (the first team, else the organization), so it is charged
    there and bounded by its limits; only a user put nowhere gets a personal key (issue 16.3).
    """
    policy.require_may_create_user(by, teams=teams, organization=organization)
    user = user_create(by=by, username=username, **fields)
    for team in teams:
        team_member_add(by=by, team=team, user=user)
    if organization is not None:
        organization_member_set(by=by, organization=organization, user=user, role="member")
    if key is None:
        return user, None, None
    scope = {"team": teams[0]} if teams else {"organization": organization} if organization is not None else {}
    created, plaintext = key_create(by=by, user=user, **scope, **key)
    return user, created, plaintext


USER_UPDATABLE = {"username", "first_name", "last_name", "email", "role", "models", "metadata", "password",
                  "is_active", "is_staff", "is_superuser", *BUDGET_FIELDS}


@transaction.atomic
def user_update(*, by: Actor, user: User, **fields: Any) -> User:
    """Changes a person's account: a proxy admin's, or their own email, password and metadata (issue 16.2)."""
    policy.require_may_change_user(by, user, set(fields))
    user, before = _locked_for_update(user, fields, updatable=USER_UPDATABLE, what="user")
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
    _apply_common_fields(user, fields)
    _save_update(by=by, instance=user, before=before)
    return user


@transaction.atomic
def user_delete(*, by: Actor, user: User) -> None:
    """Deletes the user and their personal keys (keys they hold for a team stay with the team)."""
    policy.require_proxy_admin(by, "delete users")
    for key in VirtualKey.objects.filter(user=user, team__isnull=True, project__isnull=True):
        key_delete(by=by, key=key)
    _delete(by=by, instance=user)


@transaction.atomic
def user_delete_many(*, by: Actor, users: Iterable[User]) -> None:
    for user in users:
        user_delete(by=by, user=user)


# --------------------------------------------------------------------------- organizations

@transaction.atomic
def organization_create(*, by: Actor, name: str, models: Any = None, metadata: dict | None = None,
                        **budget: Any) -> Organization:
    policy.require_proxy_admin(by, "create organizations")
    name = (name or "").strip()
    if not name:
        raise invalid("organization_alias must not be empty.", "organization_alias")
    if Organization.objects.filter(name=name).exists():
        raise invalid(f"An organization named {name!r} already exists.", "organization_alias")
    org = Organization(name=name, allowed_models=parse_models(models), metadata=metadata or {})
    _apply_budget(org, _budget_values(budget))
    _save(org)
    audit_record(by=by, action="create", instance=org, after=snapshot(org))
    return org


ORGANIZATION_UPDATABLE = {"name", "models", "metadata", "blocked", *BUDGET_FIELDS}


@transaction.atomic
def organization_update(*, by: Actor, organization: Organization, **fields: Any) -> Organization:
    policy.require_may_change_organization(by, organization, fields)
    org, before = _locked_for_update(organization, fields, updatable=ORGANIZATION_UPDATABLE, what="organization")
    if fields.get("name"):
        org.name = fields["name"]
    if "blocked" in fields:
        org.blocked = bool(fields["blocked"])
    _apply_common_fields(org, fields)
    _save_update(by=by, instance=org, before=before)
    return org


@transaction.atomic
def organization_delete(*, by: Actor, organization: Organization) -> None:
    """Deletes an organization that no team or project belongs to any more."""
    policy.require_proxy_admin(by, "delete organizations")
    if organization.teams.exists() or organization.projects.exists():
        raise invalid(f"Organization {organization.name!r} still has teams or projects; delete or move them first.",
                      "organization_id")
    for key in VirtualKey.objects.filter(organization=organization, team__isnull=True, project__isnull=True):
        key_delete(by=by, key=key)
    _delete(by=by, instance=organization)


@transaction.atomic
def organization_member_set(*, by: Actor, organization: Organization, user: User, role: str) -> OrganizationMembership:
    if role not in OrganizationMembership.OrgRole.values:
        raise invalid(f"Unknown organization role {role!r} (expected org_admin or member).", "role")
    if not policy.can_manage_org(by, organization):
        raise policy.forbidden(f"Only an admin of organization {organization.pk} may add members.")
    if not OrganizationMembership.objects.filter(organization=organization, user=user).exists():
        policy.require_may_add_member(by, user, where=f"organization {organization.name!r}")
    return _membership_set(by=by, model=OrganizationMembership, role=role, organization=organization, user=user)


@transaction.atomic
def organization_member_delete(*, by: Actor, organization: Organization, user: User) -> None:
    if not policy.can_manage_org(by, organization):
        raise policy.forbidden(f"Only an admin of organization {organization.pk} may remove members.")
    membership = OrganizationMembership.objects.filter(organization=organization, user=user).first()
    if membership is None:
        raise LlmurError(404, "not_found_error",
                         f"{user.username!r} is not a member of organization {organization.name!r}.",
                         param="user_id", code="404")
    _delete(by=by, instance=membership)


def _member_user(*, by: Actor, user_id: str | None, user_email: str | None) -> User:
    """The member named by user_id or email; as LiteLLM does, one that does not exist yet is created."""
    found = User.objects.filter(username=user_id).first() if user_id else None
    if found is None and user_email:
        found = User.objects.filter(email__iexact=user_email).first()
    if found is not None:
        return found
    if not (user_id or user_email):
        raise invalid("member needs user_id or user_email.", "member.user_id")
    return user_create(by=by, username=user_id or user_email or "", email=user_email or "")


@transaction.atomic
def organization_members_set(*, by: Actor, organization: Organization,
                             members: list[tuple[str | None, str | None, str]]) -> None:
    """/organization/member_add: (user_id, user_email, role) each, all or none."""
    for user_id, user_email, role in members:
        user = _member_user(by=by, user_id=user_id, user_email=user_email)
        organization_member_set(by=by, organization=organization, user=user, role=role)


# --------------------------------------------------------------------------- teams

@transaction.atomic
def team_create(*, by: Actor, name: str, organization: Organization | None = None, models: Any = None,
                metadata: dict | None = None, blocked: bool = False, aliases: Any = None, log_requests: bool = False,
                members: list[tuple[str | None, str | None, str]] = (), **budget: Any) -> Team:
    """A team, with its first members as (user_id, user_email, role), in one transaction."""
    if not policy.can_create_team(by, organization):
        raise policy.forbidden("Only a proxy admin, or an organization admin inside their organization, may create "
                               "teams.")
    name = (name or "").strip()
    if not name:
        raise invalid("team_alias must not be empty.", "team_alias")
    if Team.objects.filter(name=name, organization=organization).exists():
        raise invalid(f"A team named {name!r} already exists here.", "team_alias")
    team = Team(name=name, organization=organization, allowed_models=parse_models(models), metadata=metadata or {},
                blocked=blocked, aliases=parse_aliases(aliases), log_requests=bool(log_requests))
    _apply_budget(team, _budget_values(budget))
    policy.check_within(team, [organization], what="team")
    _save(team)
    audit_record(by=by, action="create", instance=team, after=snapshot(team))
    team_members_add(by=by, team=team, members=members)
    return team


TEAM_UPDATABLE = {"name", "models", "metadata", "blocked", "organization", "aliases", "log_requests", *BUDGET_FIELDS}


@transaction.atomic
def team_update(*, by: Actor, team: Team, **fields: Any) -> Team:
    policy.require_may_change_team(by, team, fields)
    team, before = _locked_for_update(team, fields, updatable=TEAM_UPDATABLE, what="team")
    if fields.get("name"):
        team.name = fields["name"].strip()
    if "blocked" in fields:
        team.blocked = bool(fields["blocked"])
    if "organization" in fields:
        team.organization = fields["organization"]
    _apply_common_fields(team, fields)
    policy.check_within(team, [team.organization], what="team")
    _save_update(by=by, instance=team, before=before)
    return team


@transaction.atomic
def team_delete(*, by: Actor, team: Team) -> None:
    """Deletes the team with its keys; refuses while projects still belong to it."""
    if not policy.can_delete_team(by, team):
        raise policy.forbidden(f"Only an organization or proxy admin may delete team {team.pk}.")
    if team.projects.exists():
        raise invalid(f"Team {team.name!r} still has projects; delete or move them first.", "team_id")
    for key in VirtualKey.objects.filter(team=team):
        key_delete(by=by, key=key)
    _delete(by=by, instance=team)


@transaction.atomic
def team_delete_many(*, by: Actor, teams: Iterable[Team]) -> None:
    for team in teams:
        team_delete(by=by, team=team)


@transaction.atomic
def team_member_add(*, by: Actor, team: Team, user: User, role: str = TeamMembership.TeamRole.MEMBER
                    ) -> TeamMembership:
    """Adds the person to the team or changes their role in it; a new membership follows
    policy.require_may_add_member (no pulling in people from teams one does not run, issue 16.2)."""
    if role not in TeamMembership.TeamRole.values:
        raise invalid(f"Unknown team member role {role!r} (expected admin or user).", "member.role")
    if not policy.can_manage_team(by, team):
        raise policy.forbidden(f"Only an admin of team {team.pk} may add members.")
    if not TeamMembership.objects.filter(team=team, user=user).exists():
        policy.require_may_add_member(by, user, where=f"team {team.name!r}")
    return _membership_set(by=by, model=TeamMembership, role=role, team=team, user=user)


@transaction.atomic
def team_members_add(*, by: Actor, team: Team, members: Iterable[tuple[str | None, str | None, str]]) -> None:
    """/team/member_add and /team/new's members: (user_id, user_email, role) each, all or none."""
    for user_id, user_email, role in members:
        user = _member_user(by=by, user_id=user_id, user_email=user_email)
        team_member_add(by=by, team=team, user=user, role=role)


@transaction.atomic
def team_member_delete(*, by: Actor, team: Team, user: User) -> None:
    if not policy.can_manage_team(by, team):
        raise policy.forbidden(f"Only an admin of team {team.pk} may remove members.")
    membership = TeamMembership.objects.filter(team=team, user=user).first()
    if membership is None:
        raise LlmurError(404, "not_found_error", f"{user.username!r} is not a member of team {team.name!r}.",
                         param="user_id", code="404")
    _delete(by=by, instance=membership)


# --------------------------------------------------------------------------- projects

def _require_project_admin(by: Actor, project: Project) -> None:
    if not policy.can_manage_project(by, project):
        raise policy.forbidden(f"Only an admin of project {project.pk}'s team or organization may change it.")


@transaction.atomic
def project_create(*, by: Actor, name: str, team: Team | None = None, organization: Organization | None = None,
                   models: Any = None, metadata: dict | None = None, is_active: bool = True,
                   log_requests: bool = False, credentials: dict[str, str] | None = None, **budget: Any) -> Project:
    name = (name or "").strip()
    if not name:
        raise invalid("project_alias must not be empty.", "project_alias")
    if team is None and organization is None:
        raise invalid("A project belongs to a team or an organization: give team_id or organization_id.", "team_id")
    if not policy.can_create_project(by, team=team, organization=organization):
        raise policy.forbidden("Only an admin of the project's team or organization may create it.")
    if team is not None and organization is None:
        organization = team.organization
    project = Project(name=name, team=team, organization=organization, allowed_models=parse_models(models),
                      metadata=metadata or {}, is_active=is_active, log_requests=bool(log_requests))
    _apply_budget(project, _budget_values(budget))
    policy.check_within(project, [team, organization], what="project")
    _save(project)
    audit_record(by=by, action="create", instance=project, after=snapshot(project))
    for provider, secret in (credentials or {}).items():
        project_credential_set(by=by, project=project, provider=provider, api_key=secret)
    return project


PROJECT_UPDATABLE = {"name", "models", "metadata", "is_active", "team", "organization", "credentials",
                     "log_requests", *BUDGET_FIELDS}


@transaction.atomic
def project_update(*, by: Actor, project: Project, **fields: Any) -> Project:
    _require_project_admin(by, project)
    project, before = _locked_for_update(project, fields, updatable=PROJECT_UPDATABLE, what="project")
    if fields.get("name"):
        project.name = fields["name"].strip()
    if "is_active" in fields:
        project.is_active = bool(fields["is_active"])
    for name in ("team", "organization"):
        if name in fields:
            setattr(project, name, fields[name])
    if project.team is None and project.organization is None:
        raise invalid("A project belongs to a team or an organization: give team_id or organization_id.", "team_id")
    if ("team" in fields or "organization" in fields) and not policy.can_create_project(
            by, team=project.team, organization=project.organization):
        raise policy.forbidden("A project moves only into a team or organization you administer.")
    _apply_common_fields(project, fields)
    policy.check_within(project, [project.team, project.organization], what="project")
    _save_update(by=by, instance=project, before=before)
    for provider, secret in (fields.get("credentials") or {}).items():
        if secret:
            project_credential_set(by=by, project=project, provider=provider, api_key=secret)
        else:
            project_credential_delete(by=by, project=project, provider=provider)
    return project


@transaction.atomic
def project_delete(*, by: Actor, project: Project) -> None:
    _require_project_admin(by, project)
    for key in VirtualKey.objects.filter(project=project):
        key_delete(by=by, key=key)
    _delete(by=by, instance=project)


@transaction.atomic
def project_delete_many(*, by: Actor, projects: Iterable[Project]) -> None:
    for project in projects:
        project_delete(by=by, project=project)


@transaction.atomic
def project_credential_set(*, by: Actor, project: Project, provider: str, api_key: str) -> ProjectCredential:
    """Stores (or replaces) a project's provider key, encrypted; it can never be read back."""
    _require_project_admin(by, project)
    provider = (provider or "").strip().lower()
    if provider not in PROVIDERS:
        raise invalid(f"Unknown provider {provider!r} for credentials (expected one of {', '.join(PROVIDERS)}).",
                      "credentials")
    if not isinstance(api_key, str) or len(api_key.strip()) < 8:
        raise invalid(f"credentials.{provider} must be the provider's API key (at least 8 characters).",
                      "credentials")
    api_key = api_key.strip()
    credential = ProjectCredential.objects.filter(project=project, provider=provider).first()
    before = snapshot(credential)
    if credential is None:
        credential = ProjectCredential(project=project, provider=provider)
    credential.encrypted_api_key = secret_encrypt(api_key)
    credential.display = "…" + api_key[-4:]
    credential.save()
    # Touch the project so the gateway's signal drops cached principals holding the old credential.
    project.save(update_fields=["updated_at"])
    audit_record(by=by, action="update" if before else "create", instance=credential, before=before,
                 after=snapshot(credential))
    return credential


@transaction.atomic
def project_credential_delete(*, by: Actor, project: Project, provider: str) -> None:
    _require_project_admin(by, project)
    credential = ProjectCredential.objects.filter(project=project, provider=provider.strip().lower()).first()
    if credential is None:
        return
    before, pk = snapshot(credential), credential.pk
    credential.delete()
    project.save(update_fields=["updated_at"])
    audit_record(by=by, action="delete", instance=credential, before=before, entity_id=str(pk))
