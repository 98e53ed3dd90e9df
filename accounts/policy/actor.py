"""Who is acting on a management surface, and what they hold: the facts every rule in accounts.policy reads.

One :class:`Actor` is built per management request (master key, a user's virtual key, an admin
session, a command or single sign-on). It answers "which role, which teams and organizations as
admin or member"; whether that is enough for an action is decided by the rules beside it.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from functools import cached_property

from django.http import HttpRequest
from django.utils import timezone

from accounts.keys import key_digest
from accounts.master_keys import master_key_digests
from accounts.models import OrganizationMembership, Role, Team, TeamMembership, User, VirtualKey
from llmur.core.errors import LlmurError

# How much each global role holds; a caller may grant a role only up to its own rank.
ROLE_RANK = {Role.VIEWER: 0, Role.INTERNAL_USER: 1, Role.TEAM_ADMIN: 2, Role.ORG_ADMIN: 3, Role.PROXY_ADMIN: 4}


@dataclass
class Actor:
    """The caller of a management action; `label` is what the audit log records as "who"."""

    label: str
    source: str                      # AuditEntry.Source value: api, admin, command, sso
    user: User | None = None
    is_master: bool = False
    key_id: int | None = None        # the virtual key the caller authenticated with, if any
    key_team_id: int | None = None   # that key's team, for a key with no user behind it

    # ------------------------------------------------------------------ construction

    @classmethod
    def master(cls, source: str = "api") -> "Actor":
        return cls(label="master key", source=source, is_master=True)

    @classmethod
    def system(cls, label: str, source: str = "command") -> "Actor":
        """The operator's own tools (manage.py commands, single sign-on): proxy-admin rights."""
        return cls(label=label, source=source, is_master=True)

    @classmethod
    def for_user(cls, user: User, source: str, *, via_key: VirtualKey | None = None) -> "Actor":
        label = user.get_username() + (f" (key {via_key.display})" if via_key else "")
        return cls(label=label, source=source, user=user, key_id=via_key.pk if via_key else None)

    @classmethod
    def for_key(cls, key: VirtualKey, source: str) -> "Actor":
        """A key with no user behind it: it reads about itself (and its team), nothing more; read-only."""
        return cls(label=f"key {key.display}", source=source, key_id=key.pk, key_team_id=key.team_id)

    @classmethod
    def of_request(cls, request: HttpRequest) -> "Actor":
        """The Actor behind an admin request (its signed-in user), built once per request."""
        actor = getattr(request, "_llmur_actor", None)
        if actor is None:
            actor = cls.for_user(request.user, "admin")
            request._llmur_actor = actor  # type: ignore[attr-defined]
        return actor

    # ------------------------------------------------------------------ what the actor holds

    @property
    def role(self) -> str:
        if self.is_master or (self.user and self.user.is_proxy_admin):
            return Role.PROXY_ADMIN
        return self.user.role if self.user else Role.VIEWER

    @property
    def rank(self) -> int:
        return ROLE_RANK[self.role]

    @property
    def is_proxy_admin(self) -> bool:
        return self.role == Role.PROXY_ADMIN

    @property
    def read_only(self) -> bool:
        return self.role == Role.VIEWER

    def is_user(self, user: User | None) -> bool:
        return user is not None and self.user is not None and user.pk == self.user.pk

    @cached_property
    def admin_org_ids(self) -> frozenset[int]:
        if not self.user or self.read_only:
            return frozenset()
        return frozenset(OrganizationMembership.objects.filter(
            user=self.user, role=OrganizationMembership.OrgRole.ADMIN).values_list("organization_id", flat=True))

    @cached_property
    def admin_team_ids(self) -> frozenset[int]:
        """Teams this actor administers: as a team admin, or through an organization it administers."""
        if not self.user or self.read_only:
            return frozenset()
        direct = TeamMembership.objects.filter(user=self.user, role=TeamMembership.TeamRole.ADMIN)
        ids = set(direct.values_list("team_id", flat=True))
        ids |= set(Team.objects.filter(organization_id__in=self.admin_org_ids).values_list("id", flat=True))
        return frozenset(ids)

    @cached_property
    def member_team_ids(self) -> frozenset[int]:
        if not self.user:
            return frozenset({self.key_team_id}) if self.key_team_id else frozenset()
        return frozenset(TeamMembership.objects.filter(user=self.user).values_list("team_id", flat=True))

    @cached_property
    def member_org_ids(self) -> frozenset[int]:
        if not self.user:
            return frozenset()
        return frozenset(OrganizationMembership.objects.filter(user=self.user).values_list("organization_id",
                                                                                          flat=True))

    @property
    def administers_anything(self) -> bool:
        return self.is_proxy_admin or bool(self.admin_team_ids or self.admin_org_ids)


def actor_from_key(raw: str, *, source: str = "api", keyless: bool = False) -> Actor:
    """The Actor behind a bearer key on the management API: a master key or a user's virtual key.

    `keyless`: the route also answers a key that belongs to no user, about itself (Actor.for_key).
    """
    raw = (raw or "").strip()
    if not raw:
        raise LlmurError(401, "auth_error", "Missing key: send Authorization: Bearer KEY (or x-api-key).", code="401")
    digest = key_digest(raw)
    if any(hmac.compare_digest(digest, known) for known in master_key_digests()):
        return Actor.master(source)
    key = VirtualKey.objects.select_related("user").filter(key_hash=digest).first()
    if key is None or key.blocked or (key.expires_at is not None and key.expires_at <= timezone.now()):
        raise LlmurError(401, "auth_error", "Invalid, blocked or expired key.", code="401")
    if key.user is None and keyless:
        return Actor.for_key(key, source)
    if key.user is None or not key.user.is_active:
        raise LlmurError(403, "auth_error", "This key belongs to no active user: management routes need the master "
                         "key or the key of a user with a role.", code="403")
    return Actor.for_user(key.user, source, via_key=key)
