"""The spend event of one finished request: what settlement hands to billing (billing/events.py)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from gateway.context import RequestContext
from gateway.memory.turns import turn_event
from llmur.core.scrub import scrub_secrets


def event_from_context(ctx: RequestContext, *, cost: Decimal, now: datetime | None = None) -> dict[str, Any]:
    principal = ctx.principal
    now = now or datetime.now(dt_timezone.utc)
    ended = ctx.ended_monotonic
    latency_ms = max(0, int(((ended or time.monotonic()) - ctx.started_monotonic) * 1000))
    started_at = ctx.started_at or (now - timedelta(milliseconds=latency_ms))
    ttft = None
    if ctx.first_byte_monotonic is not None:
        ttft = max(0, int((ctx.first_byte_monotonic - ctx.started_monotonic) * 1000))
    metadata = {}
    if ctx.usage_estimated:
        metadata["usage_estimated"] = True
    if ctx.client_disconnected:
        metadata["client_disconnected"] = True
    event = {
        "request_id": ctx.request_id,
        "client_request_id": ctx.client_request_id[:128],
        "response_id": ctx.response_id[:128],
        "key_id": principal.key_id if principal else None,
        "user_id": principal.user_id if principal else None,
        "project_id": principal.project_id if principal else None,
        "team_id": principal.team_id if principal else None,
        "organization_id": principal.organization_id if principal else None,
        "key_display": (principal.display if principal else "")[:32],
        "call_type": ctx.call_type[:32],
        "model": ctx.model[:200],
        "deployment": str(ctx.deployment_id or "")[:200],
        "provider": (ctx.provider or "")[:32],
        "prompt_tokens": int(ctx.usage.prompt_tokens),
        "completion_tokens": int(ctx.usage.completion_tokens),
        "cost": str(cost),
        "success": bool(ctx.success),
        "http_status": int(ctx.http_status),
        "latency_ms": latency_ms,
        "ttft_ms": ttft,
        "started_at": started_at.isoformat(),
        "ended_at": (started_at + timedelta(milliseconds=latency_ms)).isoformat(),
        "cache_hit": bool(ctx.cache_hit),
        "stream": bool(ctx.stream),
        "end_user": (ctx.end_user or "")[:200],
        # The end user's row when it has limits (its Redis budget counter is rebuilt from these events).
        "end_user_id": ctx.end_user_limits.id if ctx.end_user_limits is not None else None,
        "metadata": metadata,
        "error": "" if ctx.success else scrub_secrets(ctx.error),
    }
    if ctx.memory is not None and ctx.success:
        event["memory"] = turn_event(ctx)   # a session turn, stored with the spend row (memory/services.py)
    return event
