"""Who is acting on the management surfaces, and what each role may do.

One :class:`Actor` is built per management request (master key, a user's virtual key, an admin
session or a command) and every API handler and admin page asks it before reading or writing.
Roles follow LiteLLM's: proxy admin sees everything; an organization admin manages the teams,
projects, members and keys of the organizations they administer; a team admin manages the keys,
projects and members of their teams; an internal user manages their own keys; a viewer only reads
their own. Team and organization admin rights come from TeamMembership / OrganizationMembership
roles, so one person can administer one team and be a plain member of another.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from django.db.models import Q, QuerySet

from accounts.models import Organization, OrganizationMembership, Project, Role, Team, TeamMembership, User, VirtualKey
from llmur.core.errors import LlmurError

# How much each global role holds; a caller may grant a role only up to its own rank.
ROLE_RANK = {Role.VIEWER: 0, Role.INTERNAL_USER: 1, Role.TEAM_ADMIN: 2, Role.ORG_ADMIN: 3, Role.PROXY_ADMIN: 4}


def forbidden(message: str) -> LlmurError:
    return LlmurError(403, "auth_error", message, code="403")


@dataclass
class Actor:
    """The caller of a management action; `label` is what the audit log records as "who"."""

    label: str
    source: str                      # AuditEntry.Source value: api, admin, command, sso
    user: User | None = None
    is_master: bool = False
    key_id: int | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ construction

    @classmethod
    def master(cls, source: str = "api") -> "Actor":
        return cls(label="master key", source=source, is_master=True)

    @classmethod
    def system(cls, label: str, source: str = "command") -> "Actor":
        return cls(label=label, source=source, is_master=True)

    @classmethod
    def for_user(cls, user: User, source: str, *, via_key: VirtualKey | None = None) -> "Actor":
        label = user.get_username() + (f" (key {via_key.display})" if via_key else "")
        return cls(label=label, source=source, user=user, key_id=via_key.pk if via_key else None)

    # ------------------------------------------------------------------ what the actor holds

    @property
    def role(self) -> str:
        if self.is_master or (self.user and self.user.is_proxy_admin):
            return Role.PROXY_ADMIN
        return self.user.role if self.user else Role.VIEWER

    @property
    def is_proxy_admin(self) -> bool:
        return self.role == Role.PROXY_ADMIN

    @property
    def read_only(self) -> bool:
        return self.role == Role.VIEWER

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
    def admin_org_ids(self) -> frozenset[int]:
        if not self.user or self.read_only:
            return frozenset()
        return frozenset(OrganizationMembership.objects.filter(
            user=self.user, role=OrganizationMembership.OrgRole.ADMIN).values_list("organization_id", flat=True))

    @cached_property
    def member_team_ids(self) -> frozenset[int]:
        if not self.user:
            return frozenset()
        return frozenset(TeamMembership.objects.filter(user=self.user).values_list("team_id", flat=True))

    @cached_property
    def member_org_ids(self) -> frozenset[int]:
        if not self.user:
            return frozenset()
        return frozenset(OrganizationMembership.objects.filter(user=self.user).values_list("organization_id",
                                                                                          flat=True))

    # ------------------------------------------------------------------ checks that raise

    def require_write(self) -> None:
        if self.read_only:
            raise forbidden("Your role (viewer) is read-only.")

    def require_proxy_admin(self, what: str) -> None:
        if not self.is_proxy_admin:
            raise forbidden(f"Only a proxy admin may {what}.")

    def require_grantable_role(self, role: str) -> None:
        if role not in ROLE_RANK:
            raise LlmurError(400, "invalid_request_error",
                             f"Unknown user_role {role!r} (expected one of {', '.join(ROLE_RANK)}).",
                             param="user_role")
        if ROLE_RANK[role] > ROLE_RANK[self.role]:
            raise forbidden(f"You cannot grant the role {role}: it is above your own ({self.role}).")

    # ------------------------------------------------------------------ teams and organizations

    def can_manage_team(self, team: Team) -> bool:
        return self.is_proxy_admin or team.pk in self.admin_team_ids

    def can_read_team(self, team: Team) -> bool:
        return self.can_manage_team(team) or team.pk in self.member_team_ids or (
            team.organization_id is not None and team.organization_id in self.member_org_ids)

    def can_manage_org(self, org: Organization) -> bool:
        return self.is_proxy_admin or org.pk in self.admin_org_ids

    def can_read_org(self, org: Organization) -> bool:
        return self.can_manage_org(org) or org.pk in self.member_org_ids

    def teams(self) -> QuerySet[Team]:
        qs = Team.objects.all()
        if self.is_proxy_admin:
            return qs
        return qs.filter(Q(pk__in=self.admin_team_ids | self.member_team_ids)
                         | Q(organization_id__in=self.member_org_ids))

    def organizations(self) -> QuerySet[Organization]:
        qs = Organization.objects.all()
        return qs if self.is_proxy_admin else qs.filter(pk__in=self.member_org_ids)

    # ------------------------------------------------------------------ projects

    def can_manage_project(self, project: Project) -> bool:
        if self.is_proxy_admin:
            return True
        if project.team_id and project.team_id in self.admin_team_ids:
            return True
        return bool(project.organization_id and project.organization_id in self.admin_org_ids)

    def can_read_project(self, project: Project) -> bool:
        return self.can_manage_project(project) or (project.team_id in self.member_team_ids) or (
            project.organization_id is not None and project.organization_id in self.member_org_ids)

    def projects(self) -> QuerySet[Project]:
        qs = Project.objects.all()
        if self.is_proxy_admin:
            return qs
        return qs.filter(Q(team_id__in=self.admin_team_ids | self.member_team_ids)
                         | Q(organization_id__in=self.member_org_ids))

    # ------------------------------------------------------------------ keys

    def can_manage_key(self, key: VirtualKey) -> bool:
        if self.is_proxy_admin:
            return True
        if self.read_only:
            return False
        if key.team_id and key.team_id in self.admin_team_ids:
            return True
        if key.organization_id and key.organization_id in self.admin_org_ids:
            return True
        if key.project_id:
            project = key.project
            if project and (project.team_id in self.admin_team_ids or project.organization_id in self.admin_org_ids):
                return True
        # Own personal keys only: a key in a team (even one the member issued to themselves) is the team
        # admins' to change, so a member cannot lift the budget an admin set on it.
        return self.user is not None and key.user_id == self.user.pk and key.team_id is None

    def can_read_key(self, key: VirtualKey) -> bool:
        if self.can_manage_key(key):
            return True
        return self.user is not None and key.user_id == self.user.pk

    def keys(self) -> QuerySet[VirtualKey]:
        qs = VirtualKey.objects.all()
        if self.is_proxy_admin:
            return qs
        own = Q(user_id=self.user.pk) if self.user else Q(pk__in=[])
        return qs.filter(own | Q(team_id__in=self.admin_team_ids) | Q(organization_id__in=self.admin_org_ids)
                         | Q(project__team_id__in=self.admin_team_ids)
                         | Q(project__organization_id__in=self.admin_org_ids))

    # ------------------------------------------------------------------ users

    def can_manage_user(self, user: User) -> bool:
        if self.is_proxy_admin:
            return True
        if self.read_only or user.is_proxy_admin or ROLE_RANK.get(user.role, 0) > ROLE_RANK[self.role]:
            return False
        # Team and organization admins manage the people in what they administer.
        return TeamMembership.objects.filter(user=user, team_id__in=self.admin_team_ids).exists() or \
            OrganizationMembership.objects.filter(user=user, organization_id__in=self.admin_org_ids).exists()

    def can_read_user(self, user: User) -> bool:
        return (self.user is not None and user.pk == self.user.pk) or self.can_manage_user(user)

    def users(self) -> QuerySet[User]:
        qs = User.objects.all()
        if self.is_proxy_admin:
            return qs
        own = Q(pk=self.user.pk) if self.user else Q(pk__in=[])
        return qs.filter(own | Q(team_memberships__team_id__in=self.admin_team_ids)
                         | Q(organization_memberships__organization_id__in=self.admin_org_ids)).distinct()


def actor_from_key(raw: str, *, source: str = "api") -> Actor:
    """The Actor behind a bearer key on the management API: a master key or a user's virtual key."""
    import hmac

    from django.utils import timezone

    from accounts.keys import key_digest
    from accounts.master_keys import master_key_digests

    raw = (raw or "").strip()
    if not raw:
        raise LlmurError(401, "auth_error", "Missing key: send Authorization: Bearer KEY (or x-api-key).", code="401")
    digest = key_digest(raw)
    if any(hmac.compare_digest(digest, known) for known in master_key_digests()):
        return Actor.master(source)
    key = VirtualKey.objects.select_related("user").filter(key_hash=digest).first()
    if key is None or key.blocked or (key.expires_at is not None and key.expires_at <= timezone.now()):
        raise LlmurError(401, "auth_error", "Invalid, blocked or expired key.", code="401")
    if key.user is None or not key.user.is_active:
        raise forbidden("This key belongs to no active user: management routes need the master key or the key "
                        "of a user with a role.")
    return Actor.for_user(key.user, source, via_key=key)
