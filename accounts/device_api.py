"""Agent sign-in over HTTP: the two RFC 8628 endpoints agents call, and the operators' list and revoke of agent keys.

POST /sso/device/code and /sso/device/token take form fields (application/x-www-form-urlencoded,
as RFC 8628 says) or the same fields as JSON, and answer errors in OAuth's shape (RFC 6749 5.2:
{"error": ..., "error_description": ...}), which is what device-flow clients parse, rather than
the OpenAI shape of the rest of the API. Both answer 404 while sso.device_flow.enabled is off.
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from ninja import Router, Schema

from accounts import device_throttle, policy, selectors, services
from accounts.api import management_auth
from accounts.device_codes import GRANT_TYPE
from accounts.models import DeviceAuthorization
from accounts.policy import Actor
from accounts.services import DeviceFlowError
from llmur.core.errors import LlmurError

VERIFICATION_PATH = "/sso/device"
# RFC 6749 5.1: token answers are never cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

oauth_router = Router(tags=["Agent sign-in"])
router = Router(auth=management_auth, tags=["Agent sign-in"])


def require_enabled() -> None:
    if not services.device_flow_settings().enabled:
        raise LlmurError(404, "not_found_error", "Agent sign-in is off on this server (sso.device_flow.enabled).",
                         code="404")


def _fields(request: HttpRequest) -> dict[str, str]:
    """Form fields, or a JSON object's string values."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise DeviceFlowError("invalid_request", "The body is not valid JSON; send form fields "
                                                     "(application/x-www-form-urlencoded) or a JSON object.") from None
        if not isinstance(body, dict):
            raise DeviceFlowError("invalid_request", "The body must be a JSON object of fields.")
        return {k: v for k, v in body.items() if isinstance(v, str)}
    return {k: request.POST.get(k, "") for k in request.POST}


def _oauth_error(exc: DeviceFlowError) -> JsonResponse:
    body: dict[str, Any] = {"error": exc.error, "error_description": exc.description}
    if exc.interval is not None:
        body["interval"] = exc.interval
    return JsonResponse(body, status=exc.status, headers=NO_STORE)


def verification_uri(request: HttpRequest) -> str:
    return services.device_flow_settings().verification_uri or request.build_absolute_uri(VERIFICATION_PATH)


@oauth_router.post("/sso/device/code", summary="RFC 8628 device authorization request: codes for an agent.")
def device_code(request: HttpRequest):
    require_enabled()
    flow = services.device_flow_settings()
    try:
        fields = _fields(request)
        address = request.META.get("REMOTE_ADDR", "")
        if not device_throttle.code_request_allowed(address=address, limit=flow.max_codes_per_address):
            raise DeviceFlowError("slow_down", "Too many sign-in requests from this address; try again later.",
                                  status=429)
        codes = services.device_authorization_create(
            client_id=fields.get("client_id", ""), scope=fields.get("scope", ""), client_address=address,
            user_agent=request.headers.get("User-Agent", ""))
    except DeviceFlowError as exc:
        return _oauth_error(exc)
    except device_throttle.ThrottleUnavailable:
        return _oauth_error(DeviceFlowError("temporarily_unavailable", "Sign-in is unavailable while the cache "
                                                                       "is unreachable; try again shortly.",
                                            status=503))
    uri = verification_uri(request)
    return JsonResponse({
        "device_code": codes.device_code, "user_code": codes.user_code, "verification_uri": uri,
        "verification_uri_complete": f"{uri}?{urlencode({'user_code': codes.user_code})}",
        "expires_in": flow.code_lifetime_seconds, "interval": codes.authorization.interval,
    }, headers=NO_STORE)


@oauth_router.post("/sso/device/token", summary="RFC 8628 device access token request: the agent's key, once "
                                                "approved.")
def device_token(request: HttpRequest):
    require_enabled()
    try:
        fields = _fields(request)
        if fields.get("grant_type") != GRANT_TYPE:
            raise DeviceFlowError("unsupported_grant_type", f"grant_type must be {GRANT_TYPE}.")
        if not fields.get("device_code"):
            raise DeviceFlowError("invalid_request", "device_code is required: the one POST /sso/device/code "
                                                     "returned.")
        issued = services.device_token(device_code=fields["device_code"], client_id=fields.get("client_id") or None)
    except DeviceFlowError as exc:
        return _oauth_error(exc)
    body: dict[str, Any] = {"access_token": issued.plaintext, "token_type": "Bearer",
                            "scope": " ".join(issued.key.allowed_models or [])}
    if issued.key.expires_at is not None:
        body["expires_in"] = max(0, int((issued.key.expires_at - timezone.now()).total_seconds()))
    return JsonResponse(body, headers=NO_STORE)


# --------------------------------------------------------------------------- operators: agent keys

class AgentKeyOut(Schema):
    id: int
    agent: str
    status: str
    requested_models: list[str]
    user_id: str | None
    token: str | None
    team_id: str | None
    organization_id: str | None
    key_alias: str | None
    key_display: str | None
    key_blocked: bool | None
    key_expires: dt.datetime | None
    key_last_used_at: dt.datetime | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    issued_at: dt.datetime | None


def agent_key_out(authorization: DeviceAuthorization) -> dict[str, Any]:
    key = authorization.key
    return {
        "id": authorization.pk, "agent": authorization.client_id, "status": authorization.status,
        "requested_models": authorization.scope.split(),
        "user_id": authorization.decided_by.username if authorization.decided_by_id else None,
        # The key's id on the management API (/key/info, /key/block ...), as /key/list gives it.
        "token": key.key_hash if key else None,
        "team_id": key.team.public_id if key and key.team_id else None,
        "organization_id": key.organization.public_id if key and key.organization_id else None,
        "key_alias": key.key_alias if key else None, "key_display": key.display if key else None,
        "key_blocked": key.blocked if key else None, "key_expires": key.expires_at if key else None,
        "key_last_used_at": key.last_used_at if key else None, "created_at": authorization.created_at,
        "decided_at": authorization.decided_at, "issued_at": authorization.issued_at,
    }


def _actor(request: HttpRequest) -> Actor:
    return request.auth  # type: ignore[attr-defined]


@router.get("/sso/agent_keys", response=list[AgentKeyOut], summary="Agent sign-ins and their keys you may see.")
def agent_keys(request: HttpRequest, status: str | None = None):
    rows = selectors.agent_sign_in_list(queryset=policy.visible_agent_sign_ins(_actor(request)), status=status)
    return [agent_key_out(a) for a in rows]


class AgentKeyRevokeIn(Schema):
    id: int


@router.post("/sso/agent_keys/revoke", response=AgentKeyOut,
             summary="Block an agent's key at once and close its sign-in (id from /sso/agent_keys).")
def agent_key_revoke(request: HttpRequest, body: AgentKeyRevokeIn):
    actor = _actor(request)
    authorization = selectors.agent_sign_in_get(authorization_id=body.id,
                                                queryset=policy.visible_agent_sign_ins(actor))
    return agent_key_out(services.agent_key_revoke(by=actor, authorization=authorization))
