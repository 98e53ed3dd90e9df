"""Agent sign-in through the OAuth 2.0 device authorization grant (RFC 8628): request, decide, collect, revoke.

1. The agent asks for codes (device_authorization_create): a device_code it keeps, a user_code the
   person types on the verification page.
2. The person approves (device_approve) or denies (device_deny). Approving creates the key at once,
   through key_create and so under the same policy as /key/generate: owned by the approver, in a
   scope they may create keys in, with the operator's life and limits (sso.device_flow). Its
   secret is a random one nobody is given.
3. The agent polls (device_token) and, once approved, gets the key's real secret: a fresh one is
   set then and shown in that answer only, so no plaintext key is ever stored, and a replayed
   device_code finds the grant already used.

Approvals, denials, issued and revoked keys each leave an audit entry.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import policy
from accounts.audit import audit_record, snapshot
from accounts.device_codes import (
    device_code_digest,
    device_code_generate,
    user_code_digest,
    user_code_generate,
    user_code_normalize,
)
from accounts.keys import key_digest, key_display, key_generate
from accounts.models import DeviceAuthorization, VirtualKey
from accounts.policy import Actor
from accounts.services.common import invalid, parse_duration
from accounts.services.keys import key_block, key_create, key_delete

# RFC 8628 3.5: each slow_down adds five seconds to the interval the agent must keep.
SLOW_DOWN_STEP = 5
# A poll may arrive this much early (the agent's timer and the network are not exact) and still count as on time.
POLL_TOLERANCE_SECONDS = 0.5
# Expired sign-ins stay this long (the agent still hears expired_token, the admin lists them), then go.
KEEP_EXPIRED = dt.timedelta(days=1)
_CLIENT_ID = re.compile(r"[\w .:@/+()-]{1,100}")
_MODEL_NAME = re.compile(r"[\w.:/@+-]{1,200}")


class DeviceFlowError(Exception):
    """An OAuth error as RFC 6749 5.2 and RFC 8628 3.5 name them: rendered as {"error", "error_description"}."""

    def __init__(self, error: str, description: str, *, status: int = 400, interval: int | None = None):
        super().__init__(description)
        self.error, self.description, self.status, self.interval = error, description, status, interval


@dataclass
class DeviceCodes:
    authorization: DeviceAuthorization
    device_code: str
    user_code: str


@dataclass
class IssuedKey:
    key: VirtualKey
    plaintext: str


def device_flow_settings():
    return settings.LLMUR.config.sso.device_flow


# --------------------------------------------------------------------------- 1. the agent asks

def _requested_models(scope: str) -> str:
    names = (scope or "").split()
    if len(names) > 50 or any(not _MODEL_NAME.fullmatch(n) for n in names):
        raise DeviceFlowError("invalid_scope", "scope is a space-separated list of at most 50 model names "
                                               "(letters, digits and . : / @ + - _), e.g. 'gpt-4o-mini mock-gpt'.")
    return " ".join(dict.fromkeys(names))


def device_authorization_create(*, client_id: str, scope: str = "", client_address: str = "",
                                user_agent: str = "") -> DeviceCodes:
    """New codes for an agent; client_id is the name the approver will see (e.g. "claude-code on laptop-7")."""
    client_id = (client_id or "").strip()
    if not _CLIENT_ID.fullmatch(client_id):
        raise DeviceFlowError("invalid_request", "client_id is required: the agent's name as the person approving "
                                                 "will see it, 1 to 100 letters, digits, spaces or . : @ / + ( ) -.")
    models = _requested_models(scope)
    flow = device_flow_settings()
    now = timezone.now()
    with transaction.atomic():
        # A live user code is never given twice (20^8 codes make this loop almost never turn).
        for _ in range(10):
            user_code = user_code_generate()
            digest = user_code_digest(user_code_normalize(user_code) or "")
            if not DeviceAuthorization.objects.filter(user_code_hash=digest, status=DeviceAuthorization.Status.PENDING,
                                                      expires_at__gt=now).exists():
                break
        device_code = device_code_generate()
        authorization = DeviceAuthorization.objects.create(
            device_code_hash=device_code_digest(device_code), user_code_hash=digest, client_id=client_id,
            scope=models, client_address=client_address[:64], user_agent=(user_agent or "")[:300],
            interval=flow.interval_seconds, expires_at=now + dt.timedelta(seconds=flow.code_lifetime_seconds))
    return DeviceCodes(authorization, device_code, user_code)


# --------------------------------------------------------------------------- 2. the person decides

def _pending_locked(authorization: DeviceAuthorization) -> DeviceAuthorization:
    locked = DeviceAuthorization.objects.select_for_update().get(pk=authorization.pk)
    if locked.status != DeviceAuthorization.Status.PENDING or locked.expires_at <= timezone.now():
        raise invalid("This sign-in is no longer waiting (already decided, or expired): ask the agent to start "
                      "again.", "user_code")
    return locked


def _key_models(requested: str, configured: list[str]) -> list[str]:
    asked = requested.split()
    if asked and configured:
        allowed = [m for m in asked if m in configured]
        if not allowed:
            raise invalid(f"The agent asks for {', '.join(asked)}, none of which agent keys may use "
                          f"(sso.device_flow.models: {', '.join(configured)}).", "scope")
        return allowed
    return asked or list(configured)


def _key_limits() -> dict[str, Any]:
    flow = device_flow_settings()
    limits = {"max_budget": flow.max_budget, "budget_duration": flow.budget_duration, "rpm_limit": flow.rpm_limit,
              "tpm_limit": flow.tpm_limit, "max_parallel_requests": flow.max_parallel_requests}
    return {name: value for name, value in limits.items() if value not in (None, "")}


@transaction.atomic
def device_approve(*, by: Actor, authorization: DeviceAuthorization, owners: dict[str, Any]) -> VirtualKey:
    """Creates the agent's key, owned by `by` in the scope `owners` names, as /key/generate would (403 otherwise)."""
    locked = _pending_locked(authorization)
    flow = device_flow_settings()
    key, _unused_secret = key_create(
        by=by, user=by.user, key_alias=f"{locked.client_id} (agent sign-in)"[:200],
        models=_key_models(locked.scope, flow.models),
        expires_at=timezone.now() + parse_duration(flow.key_duration, param="sso.device_flow.key_duration"),
        metadata={"issued_by": "device_flow", "agent": locked.client_id, "agent_sign_in": locked.pk},
        **owners, **_key_limits())
    before = snapshot(locked)
    locked.status, locked.decided_by, locked.decided_at, locked.key = (
        DeviceAuthorization.Status.APPROVED, by.user, timezone.now(), key)
    locked.save(update_fields=["status", "decided_by", "decided_at", "key"])
    audit_record(by=by, action="approve", instance=locked, before=before, after=snapshot(locked))
    return key


@transaction.atomic
def device_deny(*, by: Actor, authorization: DeviceAuthorization) -> DeviceAuthorization:
    locked = _pending_locked(authorization)
    before = snapshot(locked)
    locked.status, locked.decided_by, locked.decided_at = DeviceAuthorization.Status.DENIED, by.user, timezone.now()
    locked.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(by=by, action="deny", instance=locked, before=before, after=snapshot(locked))
    return locked


# --------------------------------------------------------------------------- 3. the agent polls

def _issue(authorization: DeviceAuthorization) -> IssuedKey | DeviceFlowError:
    key = VirtualKey.objects.select_for_update().filter(pk=authorization.key_id).first()
    if key is None:
        return DeviceFlowError("access_denied", "The key approved for this agent was deleted before it was "
                                                "collected; start again.")
    before = snapshot(key)
    plaintext = key_generate()
    key.key_hash, key.display = key_digest(plaintext), key_display(plaintext)
    # An ordinary save: the gateway's signals see the key change like any other.
    key.save(update_fields=["key_hash", "display", "updated_at"])
    authorization.status, authorization.issued_at = DeviceAuthorization.Status.ISSUED, timezone.now()
    authorization.save(update_fields=["status", "issued_at", "last_polled_at"])
    agent = Actor.system(f"agent {authorization.client_id} (device flow)", source="sso")
    audit_record(by=agent, action="issue", instance=key, before=before, after=snapshot(key))
    return IssuedKey(key, plaintext)


@transaction.atomic
def _poll(*, device_code: str, client_id: str | None) -> IssuedKey | DeviceFlowError:
    """One poll, committed whatever it answers (the poll time counts for the next slow_down)."""
    authorization = (DeviceAuthorization.objects.select_for_update()
                     .filter(device_code_hash=device_code_digest(device_code)).first())
    if authorization is None or (client_id and client_id != authorization.client_id):
        return DeviceFlowError("invalid_grant", "Unknown device_code (or it belongs to another client_id).")
    status = authorization.status
    if status in (DeviceAuthorization.Status.ISSUED, DeviceAuthorization.Status.REVOKED):
        return DeviceFlowError("invalid_grant", "This device_code was already used; start again with "
                                                "POST /sso/device/code.")
    now = timezone.now()
    if now >= authorization.expires_at:
        return DeviceFlowError("expired_token", "The codes expired before the sign-in was approved; start again "
                                                "with POST /sso/device/code.")
    previous, authorization.last_polled_at = authorization.last_polled_at, now
    if previous is not None and (now - previous).total_seconds() + POLL_TOLERANCE_SECONDS < authorization.interval:
        authorization.interval += SLOW_DOWN_STEP
        authorization.save(update_fields=["interval", "last_polled_at"])
        return DeviceFlowError("slow_down", f"Polling too fast: wait {authorization.interval} seconds between "
                                            "requests.", interval=authorization.interval)
    if status == DeviceAuthorization.Status.APPROVED:
        return _issue(authorization)
    authorization.save(update_fields=["last_polled_at"])
    if status == DeviceAuthorization.Status.DENIED:
        return DeviceFlowError("access_denied", "The sign-in was denied.")
    return DeviceFlowError("authorization_pending", "Waiting for a person to approve the sign-in at the "
                                                    "verification page.")


def device_token(*, device_code: str, client_id: str | None = None) -> IssuedKey:
    """The agent's key once approved; otherwise the RFC 8628 error that says why not yet (or not at all)."""
    outcome = _poll(device_code=device_code, client_id=client_id)
    if isinstance(outcome, DeviceFlowError):
        raise outcome
    return outcome


# --------------------------------------------------------------------------- operators

@transaction.atomic
def agent_key_revoke(*, by: Actor, authorization: DeviceAuthorization) -> DeviceAuthorization:
    """Blocks the agent's key at once (owners may, as they may block any key of theirs) and marks the sign-in."""
    locked = DeviceAuthorization.objects.select_for_update().get(pk=authorization.pk)
    if locked.key is not None:
        if policy.key_rights(by, locked.key) < policy.KeyRights.OWNER:
            raise policy.forbidden("Only the key's owner, an admin of its scope or a proxy admin may revoke it.")
        if not locked.key.blocked:
            locked.key = key_block(by=by, key=locked.key)
    elif not by.is_proxy_admin and not by.is_user(locked.decided_by):
        raise policy.forbidden("Only a proxy admin may close another person's agent sign-in.")
    if locked.status != DeviceAuthorization.Status.REVOKED:
        before = snapshot(locked)
        locked.status = DeviceAuthorization.Status.REVOKED
        locked.save(update_fields=["status"])
        audit_record(by=by, action="revoke", instance=locked, before=before, after=snapshot(locked))
    return locked


def device_authorization_purge(*, now: dt.datetime | None = None) -> int:
    """Deletes sign-ins that expired uncollected a day ago, and the never-collected keys of approved ones."""
    cutoff = (now or timezone.now()) - KEEP_EXPIRED
    stale = DeviceAuthorization.objects.filter(expires_at__lt=cutoff, status__in=[
        DeviceAuthorization.Status.PENDING, DeviceAuthorization.Status.APPROVED, DeviceAuthorization.Status.DENIED])
    purger = Actor.system("agent sign-in purge", source="command")
    count = 0
    for authorization in stale.select_related("key"):
        with transaction.atomic():
            if authorization.status == DeviceAuthorization.Status.APPROVED and authorization.key is not None:
                key_delete(by=purger, key=authorization.key)
            authorization.delete()
            count += 1
    return count
