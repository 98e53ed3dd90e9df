"""Idempotency-Key on completion requests: a retried request is answered once, charged once.

A client that sends ``Idempotency-Key: <token>`` with a non-streaming request gets, for 24 hours,
the same answer for the same key and body: the first successful response is stored and any
later request with that key is answered from the store, with ``Idempotent-Replayed: true``,
without a second upstream call, rate-limit slot or charge. Keys are scoped to the calling
virtual key (two keys may use the same token independently).

  * same key, different body → 400 (the token was reused for another request by mistake);
  * same key while the first request is still running → 409 (retry once it has finished);
  * an error answer is not stored: the key is released so the client may retry.

Storage is Redis when configured (shared by every worker), else an in-process dict (the embedded
mode is one process). Streams are not stored (they would have to be buffered whole); the header
is accepted and ignored on them. If Redis cannot be reached, the request is served without the
guarantee and a log line says so, as the response cache does.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import orjson

from gateway import http
from gateway.context import RequestContext
from llmur.core.errors import LlmurError

logger = logging.getLogger("llmur.gateway.idempotency")

HEADER = "HTTP_IDEMPOTENCY_KEY"
REPLAYED_HEADER = "Idempotent-Replayed"
STORE_SECONDS = 24 * 3600
# A request that never finishes (its process died) frees its key after this long.
PENDING_SECONDS = 15 * 60
MAX_KEY_LENGTH = 255
_PREFIX = "llmur:idem:"

# In-process store for the embedded mode: storage key → (expires at, record).
_local: dict[str, tuple[float, dict[str, Any]]] = {}
LOCAL_MAX_ENTRIES = 100_000


class Claim:
    """The right to serve one idempotent request; .replay holds a stored answer instead, when there is one."""

    __slots__ = ("storage_key", "fingerprint", "replay")

    def __init__(self, storage_key: str, fingerprint: str, replay: dict[str, Any] | None = None):
        self.storage_key, self.fingerprint, self.replay = storage_key, fingerprint, replay

    async def store(self, content: bytes, headers: dict[str, str]) -> None:
        """Keep a successful answer for STORE_SECONDS."""
        record = {"fp": self.fingerprint, "state": "done", "body": content.decode(), "headers": headers}
        await _put(self.storage_key, record, STORE_SECONDS)

    async def release(self) -> None:
        """Give the key back (the request failed): the client may retry it."""
        await _delete(self.storage_key)


def _invalid(message: str) -> LlmurError:
    return LlmurError(400, "invalid_request_error", message, param="Idempotency-Key")


async def claim(ctx: RequestContext, token: str | None, raw: bytes) -> Claim | None:
    """Claim the request's Idempotency-Key, or find its stored answer; None when there is no key (or a stream).

    Raises LlmurError 400 (key reused with another body, or malformed) or 409 (the same request is in flight).
    """
    if token is None or ctx.stream:
        return None
    token = token.strip()
    if not token or len(token) > MAX_KEY_LENGTH or not token.isprintable():
        raise _invalid(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.")
    principal = ctx.principal
    owner = principal.key_hash if principal is not None and principal.key_hash else "master"
    # Hashed, so neither the client's token nor anything about the key is readable in Redis.
    storage_key = _PREFIX + hashlib.sha256(f"{owner}\x00{ctx.call_type}\x00{token}".encode()).hexdigest()
    fingerprint = hashlib.sha256(raw).hexdigest()
    pending = {"fp": fingerprint, "state": "pending"}
    try:
        claimed = await _put_new(storage_key, pending, PENDING_SECONDS)
        if claimed:
            return Claim(storage_key, fingerprint)
        existing = await _get(storage_key)
    except Exception:  # noqa: BLE001 - store unreachable: serve without the guarantee, visibly
        logger.warning("idempotency store unreachable: request %s served without Idempotency-Key protection",
                       ctx.request_id)
        return None
    if existing is None:  # expired between the two calls: this request is the first after all
        return Claim(storage_key, fingerprint) if await _put_new(storage_key, pending, PENDING_SECONDS) else None
    if existing.get("fp") != fingerprint:
        raise _invalid("This Idempotency-Key was already used with a different request body; use a new key "
                       "for a new request.")
    if existing.get("state") != "done":
        raise LlmurError(409, "conflict", "A request with this Idempotency-Key is still in progress; retry "
                         "after it has finished.", param="Idempotency-Key", code="409")
    return Claim(storage_key, fingerprint, replay=existing)


def replay_parts(claim_: Claim) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a stored answer, marked as replayed."""
    record = claim_.replay or {}
    headers = {**(record.get("headers") or {}), REPLAYED_HEADER: "true"}
    return str(record.get("body", "")).encode(), headers


# --------------------------------------------------------------------------- storage

async def _put_new(key: str, record: dict[str, Any], seconds: int) -> bool:
    redis = http.redis()
    if redis is not None:
        return bool(await redis.set(key, orjson.dumps(record), ex=seconds, nx=True))
    now = time.monotonic()
    found = _local.get(key)
    if found is not None and found[0] > now:
        return False
    if len(_local) >= LOCAL_MAX_ENTRIES:
        for stale in [k for k, (expires, _) in _local.items() if expires <= now]:
            del _local[stale]
    _local[key] = (now + seconds, record)
    return True


async def _get(key: str) -> dict[str, Any] | None:
    redis = http.redis()
    if redis is not None:
        raw = await redis.get(key)
        return orjson.loads(raw) if raw is not None else None
    found = _local.get(key)
    return found[1] if found is not None and found[0] > time.monotonic() else None


async def _put(key: str, record: dict[str, Any], seconds: int) -> None:
    try:
        redis = http.redis()
        if redis is not None:
            await redis.set(key, orjson.dumps(record), ex=seconds)
        else:
            _local[key] = (time.monotonic() + seconds, record)
    except Exception:  # noqa: BLE001 - the answer was served; only a later replay is lost
        logger.warning("idempotency store unreachable: an answer could not be stored for replay")


async def _delete(key: str) -> None:
    try:
        redis = http.redis()
        if redis is not None:
            await redis.delete(key)
        else:
            _local.pop(key, None)
    except Exception:  # noqa: BLE001 - the pending entry expires by itself after PENDING_SECONDS
        logger.warning("idempotency store unreachable: a failed request's key stays claimed until it expires")
