"""Why clients were refused: counted in process per key and reason, added to RefusalCount periodically.

A refused request (bad key, expired key, model not allowed, over budget, rate limited) never
reaches a model and so leaves no SpendLog. Writing a row per refusal would let a client with a
wrong key write to the database as fast as it can send; instead each web process counts refusals
in memory per (key, reason), keeps the last few as samples, and adds its counts to the hour's
RefusalCount rows every FLUSH_SECONDS. Keys the gateway does not recognise (missing, unknown,
blocked) share one bucket, so a flood of made-up keys adds one row per hour and reason.

The gateway calls `refusal_count` where it answers a refusal; nothing here awaits or touches the
database on that path.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Max, QuerySet, Sum

from billing.models import RefusalCount
from llmur.core.db import db_call
from llmur.core.scrub import scrub_secrets

logger = logging.getLogger("llmur.billing.refusals")

FLUSH_SECONDS = 5.0
SAMPLES = 5
# A process holds at most this many (key, reason) buckets between flushes; past it, new keys
# are counted in the unknown bucket rather than growing memory without bound.
MAX_BUCKETS = 10_000


def refusal_reason(*, status: int, type: str, message: str) -> str:
    """A short label operators read: "expired key", "over budget", "model not allowed", ..."""
    text = message.lower()
    if type == "key_model_access_denied":   # LiteLLM's 401 for a model outside the key's allow-list
        return "model not allowed"
    if status == 401:
        for needle, label in (("expired", "expired key"), ("blocked", "blocked key or owner"),
                              ("deactivated", "owner deactivated"), ("inactive", "project inactive"),
                              ("no api key", "missing key"), ("missing key", "missing key")):
            if needle in text:
                return label
        return "unknown key"
    if type == "budget_exceeded":
        return "over budget"
    if status == 429:
        return "rate limited"
    if status == 403:
        return "model not allowed" if "model" in text else "forbidden"
    if status == 404:
        return "unknown model"
    if status in (400, 413, 415, 422):
        return "bad request"
    return type or f"status {status}"


@dataclass
class _Bucket:
    key_id: int | None
    key_display: str
    status: int
    count: int = 0
    last_at: datetime | None = None
    samples: deque = field(default_factory=lambda: deque(maxlen=SAMPLES))


class RefusalCounter:
    """Per-process counts of refusals since the last flush, and the loop that writes them."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int | None, str], _Bucket] = {}
        self._lock = threading.Lock()
        self._task: asyncio.Task | None = None

    def record(self, *, key_id: int | None, key_display: str, status: int, reason: str, message: str,
               model: str = "", request_id: str = "", now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        with self._lock:
            if key_id is not None and (key_id, reason) not in self._buckets and len(self._buckets) >= MAX_BUCKETS:
                key_id, key_display = None, ""
            bucket = self._buckets.get((key_id, reason))
            if bucket is None:
                bucket = self._buckets[(key_id, reason)] = _Bucket(key_id, key_display[:32] if key_id else "", status)
            bucket.count += 1
            bucket.last_at = now
            bucket.samples.appendleft({"at": now.isoformat(), "request_id": request_id[:64], "model": model[:200],
                                       "status": status, "message": scrub_secrets(message, limit=500)})
        self._ensure_task()

    def pending(self) -> int:
        with self._lock:
            return sum(b.count for b in self._buckets.values())

    def take(self) -> dict[tuple[int | None, str], _Bucket]:
        with self._lock:
            buckets, self._buckets = self._buckets, {}
        return buckets

    def flush_sync(self) -> int:
        """Add what was counted since the last flush to the database; returns how many refusals."""
        buckets = self.take()
        try:
            return refusal_counts_add(buckets=buckets)
        except Exception:
            self._put_back(buckets)
            raise

    async def flush(self) -> int:
        buckets = self.take()
        if not buckets:
            return 0
        try:
            return await db_call(refusal_counts_add, buckets=buckets)
        except Exception:
            self._put_back(buckets)
            raise

    def _put_back(self, buckets: dict[tuple[int | None, str], _Bucket]) -> None:
        """A failed flush keeps its counts for the next one (the database may be down for a while)."""
        with self._lock:
            for ident, old in buckets.items():
                now = self._buckets.get(ident)
                if now is None:
                    self._buckets[ident] = old
                else:
                    now.count += old.count
                    now.samples.extend(old.samples)

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a command, a sync test): flush_sync writes
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            try:
                if await self.flush() == 0 and self.pending() == 0:
                    return  # idle: the next refusal starts the loop again
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("refusal counts not written; retrying in %.0f s", FLUSH_SECONDS, exc_info=True)


counter = RefusalCounter()


def refusal_count(*, error: Any, principal: Any = None, model: str = "", request_id: str = "") -> None:
    """Count one refused request. `error` is the LlmurError answered; `principal` the caller, if known.

    An error raised for a key the gateway recognised but refused (e.g. expired) carries that key's
    Principal as `error.entity`.
    """
    who = principal if getattr(principal, "key_id", None) is not None else getattr(error, "entity", None)
    key_id = getattr(who, "key_id", None)
    if getattr(who, "is_master", False):
        key_id = None
    message = getattr(error, "message", str(error))
    status = int(getattr(error, "status", 500))
    counter.record(key_id=key_id, key_display=getattr(who, "display", "") if key_id else "", status=status,
                   reason=refusal_reason(status=status, type=getattr(error, "type", ""), message=message),
                   message=message, model=model, request_id=request_id)


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def refusal_counts_add(*, buckets: dict[tuple[int | None, str], _Bucket]) -> int:
    """Add a process's counts to the hour rows (one row per hour, key bucket and reason)."""
    total = 0
    for (key_id, reason), bucket in buckets.items():
        if not bucket.count or bucket.last_at is None:
            continue
        _add_one(key_id, reason, bucket)
        total += bucket.count
    return total


def _add_one(key_id: int | None, reason: str, bucket: _Bucket) -> None:
    ident = {"hour": _hour(bucket.last_at), "bucket": str(key_id) if key_id is not None else RefusalCount.UNKNOWN,
             "reason": reason[:64]}
    samples = list(bucket.samples)
    for attempt in range(2):
        try:
            with transaction.atomic():
                row = RefusalCount.objects.select_for_update().filter(**ident).first()
                if row is None:
                    RefusalCount.objects.create(**ident, key_id=key_id, key_display=bucket.key_display,
                                                status=bucket.status, count=bucket.count, last_at=bucket.last_at,
                                                samples=samples)
                    return
                RefusalCount.objects.filter(pk=row.pk).update(
                    count=F("count") + bucket.count, last_at=max(row.last_at, bucket.last_at), status=bucket.status,
                    samples=(samples + list(row.samples or []))[:SAMPLES])
                return
        except IntegrityError:  # another process created the hour's row first: add to it
            if attempt:
                raise


# --------------------------------------------------------------------------- reads

def refusal_summary(*, since: datetime | None = None, key_id: int | None = None) -> QuerySet:
    """Refusals per key bucket and reason since a moment (default: the last 24 hours), most first."""
    since = since or datetime.now(UTC) - timedelta(hours=24)
    qs = RefusalCount.objects.filter(hour__gte=_hour(since))
    if key_id is not None:
        qs = qs.filter(key_id=key_id)
    return (qs.values("bucket", "key_id", "key_display", "key__key_alias", "reason")
            .annotate(refused=Sum("count"), last=Max("last_at")).order_by("-refused", "reason"))
