"""Opt-in request/response logging: redact, then store off the request path.

Off unless the key, its project or its team has `log_requests` (carried in the cached Principal).
At settlement the pipeline calls :func:`request_log_submit`, which only queues the request's
context for one background thread and returns. That thread redacts secrets and common personal
data (API keys, bearer tokens, JWTs, e-mail addresses, Luhn-valid card numbers), cuts very long
bodies, and hands the row to the Celery task ``gateway.request_log_store`` (with Redis a worker
writes it; in embedded mode the task runs right there, in that thread). Rows live
`request_logging.retention_days` days; ``gateway.request_log_purge`` (beat, hourly) deletes older ones.
"""
from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.db import close_old_connections
from django.utils.dateparse import parse_datetime

from gateway.context import RequestContext
from gateway.models import RequestLog

logger = logging.getLogger("llmur.gateway.request_log")

# Logged requests waiting for the background thread; past this, new ones are dropped (and said so)
# rather than letting a stuck broker grow the process without bound.
MAX_PENDING = 10_000

# --------------------------------------------------------------------------- redaction

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Bearer tokens first, so the token after "Bearer" is replaced whatever its shape.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 [REDACTED_TOKEN]"),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}"), "[REDACTED_TOKEN]"),
    # OpenAI/Anthropic/llmur style keys (sk-..., sk-ant-..., sk-proj-...), and other providers' shapes.
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{16,}"), "[REDACTED_API_KEY]"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "[REDACTED_API_KEY]"),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), "[REDACTED_API_KEY]"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), "[REDACTED_API_KEY]"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"), "[REDACTED_API_KEY]"),
    (re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"), "[REDACTED_EMAIL]"),
)
# 13 to 19 digits, optionally grouped by single spaces or dashes; kept only when the Luhn check passes.
_CARD = re.compile(r"(?<![\d])\d(?:[ \-]?\d){12,18}(?![\d])")


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ \-]", "", match.group(0))
    return "[REDACTED_CARD]" if 13 <= len(digits) <= 19 and _luhn(digits) else match.group(0)


def redact(text: str) -> str:
    """Text with secrets and common personal data replaced by [REDACTED_...] markers."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _CARD.sub(_card, text)


# --------------------------------------------------------------------------- submitting

_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()
_pending = 0
_dropped_logged = False


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        with _lock:
            if _executor is None:
                # One thread: rows are published in order, and the broker client is not shared across threads.
                _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmur-request-log")
    return _executor


def request_log_submit(ctx: RequestContext) -> None:
    """Queue this request for logging; returns at once (the work happens in a background thread)."""
    global _pending, _dropped_logged
    if _pending >= MAX_PENDING:
        if not _dropped_logged:
            _dropped_logged = True
            logger.warning("request log: %d requests waiting to be stored; dropping new ones until they are",
                           MAX_PENDING)
        return
    with _lock:
        _pending += 1
    try:
        response = ctx.response_body
        if response is None and ctx.stream:
            response = "".join(ctx.streamed_text)
        _pool().submit(_ship, ctx, response)
    except Exception:  # noqa: BLE001 - the caller goes on to settle the request whatever happens here
        with _lock:
            _pending -= 1
        logger.exception("request %s: queueing its log failed", ctx.request_id)


def _ship(ctx: RequestContext, response: Any) -> None:
    global _pending, _dropped_logged
    try:
        request_log_store_later(row=request_log_row(ctx, response))
    except Exception:  # noqa: BLE001 - logging must never break anything else
        logger.exception("request %s: storing its log failed", ctx.request_id)
    finally:
        with _lock:
            _pending -= 1
            if _pending < MAX_PENDING // 2:
                _dropped_logged = False


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def request_log_row(ctx: RequestContext, response: Any) -> dict[str, Any]:
    """The row to store for a request: JSON-safe, redacted, cut to request_logging.max_chars."""
    limit = settings.LLMUR.config.request_logging.max_chars
    request_text, response_text = _text(ctx.body), _text(response)
    truncated = len(request_text) > limit or len(response_text) > limit
    principal = ctx.principal
    started = ctx.started_at or datetime.now(timezone.utc)
    return {
        "request_id": ctx.request_id[:64], "created_at": started.isoformat(),
        "key_id": principal.key_id, "team_id": principal.team_id, "project_id": principal.project_id,
        "user_id": principal.user_id, "organization_id": principal.organization_id,
        "key_display": (principal.display or "")[:32], "call_type": ctx.call_type[:32], "model": ctx.model[:200],
        "deployment": str(ctx.deployment_id or "")[:200], "http_status": int(ctx.http_status),
        "stream": bool(ctx.stream), "request_body": redact(request_text[:limit]),
        "response_body": redact(response_text[:limit]), "truncated": truncated,
    }


STORE_TASK = "gateway.request_log_store"


def request_log_store_later(*, row: dict[str, Any]) -> None:
    """Hand a redacted row to the store task (a worker with Redis; this thread in embedded mode)."""
    if not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        # By name: the task module (gateway/tasks.py) calls this one, not the other way round.
        current_app.send_task(STORE_TASK, args=[row])
        return
    try:
        request_log_write(rows=[row])   # embedded: what the eager task did, right here
    finally:
        close_old_connections()   # this thread wrote to the database: give the connection back


# --------------------------------------------------------------------------- storing and purging

def request_log_write(*, rows: list[dict[str, Any]]) -> int:
    """Insert rows (idempotent on request_id: a redelivered task adds nothing)."""
    objects = []
    for row in rows:
        fields = dict(row)
        fields["created_at"] = parse_datetime(str(fields.get("created_at") or "")) or datetime.now(timezone.utc)
        objects.append(RequestLog(**fields))
    created = RequestLog.objects.bulk_create(objects, ignore_conflicts=True)
    return len(created)


def request_log_purge(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete rows older than request_logging.retention_days, in batches; returns how many."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=settings.LLMUR.config.request_logging.retention_days)
    deleted = 0
    while True:
        pks = list(RequestLog.objects.filter(created_at__lt=cutoff).order_by("pk").values_list("pk", flat=True)[:batch])
        if not pks:
            return deleted
        deleted += RequestLog.objects.filter(pk__in=pks).delete()[0]
