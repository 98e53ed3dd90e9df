"""Reads on accounts for the management API, the admin and commands (the hot path has its own, cached)."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from accounts.device_codes import user_code_digest, user_code_normalize
from accounts.keys import KEY_PREFIX, key_digest
from accounts.models import Budget, DeviceAuthorization, EndUser, Organization, Project, Team, User, VirtualKey
from llmur.core.errors import LlmurError


def not_found(message: str, param: str | None = None) -> LlmurError:
    return LlmurError(404, "not_found_error", message, param=param, code="404")


def key_get(*, key: str, queryset: QuerySet[VirtualKey] | None = None) -> VirtualKey:
    """A key by its plaintext (sk-...) or by its stored token (the hex digest LiteLLM calls `token`)."""
    qs = (queryset if queryset is not None else VirtualKey.objects.all()).select_related(
        "user", "team", "project", "organization")
    key = (key or "").strip()
    if not key:
        raise LlmurError(400, "invalid_request_error", "key is required.", param="key", code="400")
    if key.startswith(KEY_PREFIX):
        found = qs.filter(key_hash=key_digest(key)).first()
    elif len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        found = qs.filter(key_hash=key).first()
    else:
        found = None
    if found is None:
        # Never echo the key itself: a typo'd secret is still mostly a secret.
        raise not_found("No such key (or it is not yours to see).", "key")
    return found


def key_get_by_alias(*, alias: str, queryset: QuerySet[VirtualKey]) -> VirtualKey:
    found = queryset.filter(key_alias=alias).first()
    if found is None:
        raise not_found(f"No key with key_alias {alias!r} (or it is not yours to see).", "key_aliases")
    return found


def _by_id(model: type, value: Any, *, param: str, label: str, queryset: QuerySet | None = None):
    qs = queryset if queryset is not None else model.objects.all()
    try:
        pk = int(str(value).strip())
    except (TypeError, ValueError):
        raise LlmurError(400, "invalid_request_error", f"{param} must be a {label} id (a number); got {value!r}.",
                         param=param, code="400") from None
    found = qs.filter(pk=pk).first()
    if found is None:
        raise not_found(f"No {label} with {param} {pk} (or it is not yours to see).", param)
    return found


def _by_public_id(model: type, value: Any, *, param: str, label: str, queryset: QuerySet | None = None):
    """A team or organization by its public id (LiteLLM's team_id / organization_id: any string)."""
    qs = queryset if queryset is not None else model.objects.all()
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise LlmurError(400, "invalid_request_error", f"{param} must be a {label} id (a string).", param=param,
                         code="400")
    public_id = str(value).strip()
    found = qs.filter(public_id=public_id).first()
    if found is None:
        raise not_found(f"No {label} with {param} {public_id!r} (or it is not yours to see).", param)
    return found


def team_get(*, team_id: Any, queryset: QuerySet[Team] | None = None) -> Team:
    return _by_public_id(Team, team_id, param="team_id", label="team", queryset=queryset)


def organization_get(*, organization_id: Any, queryset: QuerySet[Organization] | None = None) -> Organization:
    return _by_public_id(Organization, organization_id, param="organization_id", label="organization",
                         queryset=queryset)


def project_get(*, project_id: Any, queryset: QuerySet[Project] | None = None) -> Project:
    return _by_id(Project, project_id, param="project_id", label="project", queryset=queryset)


def user_get(*, user_id: str | None = None, user_email: str | None = None,
             queryset: QuerySet[User] | None = None) -> User:
    """A user by user_id (our username, as LiteLLM's user_id is a free-form string) or by email."""
    qs = queryset if queryset is not None else User.objects.all()
    if user_id:
        found = qs.filter(username=str(user_id)).first()
        what = f"user_id {user_id!r}"
    elif user_email:
        found = qs.filter(email__iexact=user_email).first()
        what = f"user_email {user_email!r}"
    else:
        raise LlmurError(400, "invalid_request_error", "Give user_id or user_email.", param="user_id", code="400")
    if found is None:
        raise not_found(f"No user with {what} (or it is not yours to see).", "user_id")
    return found


def team_member_get(*, team: Team, user_id: str | None = None, user_email: str | None = None) -> User:
    """A member of the team; anyone else (or nobody) is a 400 naming the team, as LiteLLM answers."""
    if not user_id and not user_email:
        raise LlmurError(400, "invalid_request_error", "Give user_id or user_email.", param="user_id", code="400")
    qs = team.members.all()
    found = qs.filter(username=str(user_id)).first() if user_id else qs.filter(email__iexact=user_email).first()
    if found is None:
        who = f"user_id {user_id!r}" if user_id else f"user_email {user_email!r}"
        raise LlmurError(400, "invalid_request_error", f"No member with {who} in team {team.public_id!r}.",
                         param="user_id" if user_id else "user_email", code="400")
    return found


def key_list(*, queryset: QuerySet[VirtualKey], user_id: str | None = None, team: Team | None = None,
             organization: Organization | None = None, project: Project | None = None,
             key_alias: str | None = None) -> QuerySet[VirtualKey]:
    """Keys of the queryset, newest first, narrowed to the owners given (already looked up by the caller)."""
    qs = queryset.select_related("user", "team", "project", "organization").order_by("-created_at", "-id")
    if user_id:
        qs = qs.filter(user__username=user_id)
    if team is not None:
        qs = qs.filter(team=team)
    if organization is not None:
        qs = qs.filter(organization=organization)
    if project is not None:
        qs = qs.filter(project=project)
    if key_alias:
        qs = qs.filter(key_alias=key_alias)
    return qs


def page(qs: QuerySet, *, page: int, size: int) -> tuple[list, int, int]:
    """One page of a queryset, with the total count and number of pages."""
    if page < 1 or not 1 <= size <= 1000:
        raise LlmurError(400, "invalid_request_error", "page must be ≥ 1 and size between 1 and 1000.",
                         param="page", code="400")
    total = qs.count()
    items = list(qs[(page - 1) * size: page * size])
    return items, total, max(1, -(-total // size))


def device_authorization_pending(*, user_code: str) -> DeviceAuthorization | None:
    """The agent sign-in waiting under the code a person typed (any case, dashes or not), if one is."""
    normalized = user_code_normalize(user_code)
    if normalized is None:
        return None
    return (DeviceAuthorization.objects.filter(user_code_hash=user_code_digest(normalized),
                                               status=DeviceAuthorization.Status.PENDING,
                                               expires_at__gt=timezone.now()).order_by("-created_at").first())


def agent_sign_in_list(*, queryset: QuerySet[DeviceAuthorization], status: str | None = None,
                       limit: int = 500) -> list[DeviceAuthorization]:
    """The newest agent sign-ins of the queryset (the policy's visible ones), optionally of one status."""
    if status:
        if status not in DeviceAuthorization.Status.values:
            raise LlmurError(400, "invalid_request_error", f"status must be one of "
                             f"{', '.join(DeviceAuthorization.Status.values)}.", param="status", code="400")
        queryset = queryset.filter(status=status)
    return list(queryset.order_by("-created_at")[:limit])


def agent_sign_in_get(*, authorization_id: Any, queryset: QuerySet[DeviceAuthorization]) -> DeviceAuthorization:
    found = queryset.filter(pk=authorization_id).first()
    if found is None:
        raise not_found(f"No agent sign-in {authorization_id} that you may see.", "id")
    return found


def end_user_get(*, user_id: Any) -> EndUser:
    found = EndUser.objects.select_related("budget").filter(user_id=str(user_id or "").strip()).first()
    if found is None:
        raise not_found(f"End User Id={user_id} does not exist in db.", "end_user_id")
    return found


def budget_get(*, budget_id: Any, param: str = "budget_id") -> Budget:
    found = Budget.objects.filter(budget_id=str(budget_id or "").strip()).first()
    if found is None:
        raise not_found(f"No budget with budget_id {str(budget_id)[:200]!r}.", param)
    return found
