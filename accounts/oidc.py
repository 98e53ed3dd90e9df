"""Single sign-on for the admin: mozilla-django-oidc's code flow, with provider groups mapped to roles and teams.

Configured by the `oidc:` block of the config file (llmur.config.OidcConfiguration). On every
sign-in the provider is the source of truth for what it maps: the user's role follows their
groups, and they join (or leave) exactly the teams the mapping names. Teams not in the mapping,
and memberships an operator added by hand to them, are left alone.

The id_token is checked as OpenID Connect Core 3.1.3.7 requires (issue 16.14): signature, expiry,
`aud` naming our client_id (and `azp` when several audiences are named) and `iss` equal to the
configured `oidc.issuer`; mozilla-django-oidc 5.0.2 checks neither audience nor issuer. Every
refused sign-in (16.15: expired token, wrong nonce or state, bad signature, provider down) lands on
the login page with the single sign-on message and one log line, never a 500 or a bare 400 page.
"""
from __future__ import annotations

import logging
from typing import Any

import jwt
import requests
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.urls import path
from mozilla_django_oidc import views as oidc_views
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts import services
from accounts.models import Team, TeamMembership, User
from accounts.policy import ROLE_RANK, Actor

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


def _refusal(exc: Exception) -> str:
    """What was wrong with a sign-in, in words for the log (never a token)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the id_token has expired"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the id_token was issued for another client (aud)"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the id_token comes from another issuer (iss)"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the id_token lacks the {exc.claim!r} claim"
    if isinstance(exc, jwt.InvalidTokenError):
        return f"the id_token is invalid ({type(exc).__name__})"
    if isinstance(exc, requests.RequestException):
        return f"the identity provider did not answer as expected ({type(exc).__name__})"
    return str(exc) or type(exc).__name__


class LlmurOIDCBackend(OIDCAuthenticationBackend):
    """Creates or updates the llmur user behind a provider identity; every change is audited as "sso"."""

    def _actor(self) -> Actor:
        return Actor.system("single sign-on", source="sso")

    def authenticate(self, request, **kwargs):
        try:
            return super().authenticate(request, **kwargs)
        except (SuspiciousOperation, jwt.InvalidTokenError, requests.RequestException) as exc:
            logger.warning("single sign-on refused: %s", _refusal(exc))
            return None

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        """Signature, expiry, audience and issuer of the id_token (OIDC Core 3.1.3.7)."""
        algorithm = jwt.get_unverified_header(payload).get("alg")
        if algorithm != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"the id_token is signed with {algorithm!r}, not the configured "
                                      f"{self.OIDC_RP_SIGN_ALGO!r}")
        claims = jwt.decode(payload, key, algorithms=[algorithm], audience=self.OIDC_RP_CLIENT_ID,
                            issuer=_config().issuer, options={"require": ["exp", "iat", "iss", "aud"]})
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("the id_token names several audiences but its azp is not this client")
        return claims

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


class LlmurOIDCCallbackView(oidc_views.OIDCAuthenticationCallbackView):
    """The provider's redirect back: a state that is not this browser's lands on the login page, logged."""

    def get(self, request):
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            logger.warning("single sign-on refused: %s", exc)
            return self.login_failure()


# /oidc/...: mozilla-django-oidc's routes, with the callback above (llmur/urls.py mounts them).
urlpatterns = [
    path("callback/", LlmurOIDCCallbackView.as_view(), name="oidc_authentication_callback"),
    path("authenticate/", oidc_views.OIDCAuthenticationRequestView.as_view(), name="oidc_authentication_init"),
    path("logout/", oidc_views.OIDCLogoutView.as_view(), name="oidc_logout"),
]
