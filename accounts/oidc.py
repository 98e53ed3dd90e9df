"""Single sign-on for the admin: mozilla-django-oidc's code flow, with provider groups mapped to roles and teams.

Configured by the `oidc:` block of the config file (llmur.config.OidcConfiguration). On every
sign-in the provider is the source of truth for what it maps: the user's role follows their
groups, and they join (or leave) exactly the teams the mapping names. Teams not in the mapping,
and memberships an operator added by hand to them, are left alone.
"""
from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts import services
from accounts.models import Team, TeamMembership, User
from accounts.roles import ROLE_RANK, Actor

logger = logging.getLogger("llmur.oidc")


def _config():
    return settings.LLMUR.config.oidc


def groups_of(claims: dict[str, Any]) -> list[str]:
    raw = claims.get(_config().groups_claim) or []
    if isinstance(raw, str):
        raw = [g for g in raw.replace(",", " ").split() if g]
    return [str(g) for g in raw]


def role_for(groups: list[str]) -> str | None:
    """The highest role any of the groups maps to, or None when no group maps to a role."""
    mapped = [_config().roles[g] for g in groups if g in _config().roles]
    return max(mapped, key=lambda r: ROLE_RANK[r]) if mapped else None


def teams_for(groups: list[str]) -> dict[str, str]:
    """Team name → membership role ("admin" beats "user") from the groups' team mapping."""
    out: dict[str, str] = {}
    for group in groups:
        target = _config().teams.get(group)
        if target is None:
            continue
        name, role = (target, "user") if isinstance(target, str) else (target.team, target.role)
        if out.get(name) != "admin":
            out[name] = role
    return out


class LlmurOIDCBackend(OIDCAuthenticationBackend):
    """Creates or updates the llmur user behind a provider identity; every change is audited as "sso"."""

    def _actor(self) -> Actor:
        return Actor.system("single sign-on", source="sso")

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if not (claims.get("email") or claims.get("preferred_username")):
            logger.warning("single sign-on refused: the provider sent neither email nor preferred_username")
            return False
        groups = groups_of(claims)
        if not _config().allow_unmapped and role_for(groups) is None and not teams_for(groups):
            logger.warning("single sign-on refused for %s: none of their groups is mapped",
                           claims.get("email") or claims.get("preferred_username"))
            return False
        return True

    def get_username(self, claims: dict[str, Any]) -> str:
        return str(claims.get("preferred_username") or claims.get("email"))[:150]

    def filter_users_by_claims(self, claims: dict[str, Any]):
        email = claims.get("email")
        if email:
            return self.UserModel.objects.filter(email__iexact=email)
        return self.UserModel.objects.filter(username=self.get_username(claims))

    @transaction.atomic
    def create_user(self, claims: dict[str, Any]) -> User:
        groups = groups_of(claims)
        role = role_for(groups) or _config().default_role
        username = self.get_username(claims)
        if User.objects.filter(username=username).exists():
            # A local account already holds this name (with another email): keep them apart.
            username = f"{username}@sso"[:150]
        user = services.user_create(by=self._actor(), username=username, email=claims.get("email") or "",
                                    role=role, is_staff=True, metadata={"sso_subject": claims.get("sub")})
        self._sync(user, groups)
        return user

    @transaction.atomic
    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        self._sync(user, groups_of(claims))
        return user

    def _sync(self, user: User, groups: list[str]) -> None:
        by = self._actor()
        role = role_for(groups) or _config().default_role
        fields: dict[str, Any] = {}
        if user.role != role:
            fields["role"] = role
        if not user.is_staff:
            fields["is_staff"] = True
        if user.is_superuser != (role == "proxy_admin"):
            fields["is_superuser"] = role == "proxy_admin"
        if fields:
            user = services.user_update(by=by, user=user, **fields)
        wanted = teams_for(groups)
        mapped_names = {t if isinstance(t, str) else t.team for t in _config().teams.values()}
        for name, member_role in wanted.items():
            team = Team.objects.filter(name=name).order_by("pk").first() or services.team_create(by=by, name=name)
            services.team_member_add(by=by, team=team, user=user, role=member_role)
        stale = TeamMembership.objects.filter(user=user, team__name__in=mapped_names - set(wanted))
        for membership in stale.select_related("team"):
            services.team_member_delete(by=by, team=membership.team, user=user)
