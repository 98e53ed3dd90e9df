"""POST /v1/memory/sessions/{id}/close, and the embedded upkeep: sessions summarized without waiting
for them to go idle, or every minute when there is no Celery beat."""
from __future__ import annotations

import time
from typing import Any

from celery import current_app
from django.conf import settings

from billing.connections import redis_configured
from billing.writer import writer
from gateway import auth
from gateway.memory.summarize import session_summarize, sessions_sweep
from llmur.core.db import db_call
from llmur.core.errors import LlmurError
from memory import selectors

SUMMARIZE_TASK = "gateway.memory_summarize"
SWEEP_SECONDS = 60.0


def subject_for(principal: Any, end_user: str) -> str:
    """The same subject the request path names (gateway.memory.inject.subject_of)."""
    if end_user:
        return f"end_user:{end_user[:200]}"
    return f"user:{principal.user_id}" if principal.user_id is not None else f"key:{principal.key_id}"


async def session_close(request: Any, session_id: str, end_user: str) -> dict[str, Any]:
    """Summarize the calling key's session now (embedded), or queue it for a worker (with Celery)."""
    principal = await auth.authenticate(auth.key_from_headers(request.META))
    if principal.memory is None:
        raise LlmurError(400, "invalid_request_error", "Memory is off for this key: an operator turns it on with "
                         "the memory block of the config, or of the key, its project or its team.", code="400")
    if not session_id or len(session_id) > 128:
        raise LlmurError(400, "invalid_request_error", "The session id must be 1 to 128 characters.",
                         param="session_id", code="400")
    scope, subject = principal.memory.scope, subject_for(principal, end_user)
    out: dict[str, Any] = {"object": "memory.session", "id": session_id, "status": "nothing_to_summarize"}
    if not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        # The worker drains the spend queue first: the session's last turns may still be on their way.
        current_app.send_task(SUMMARIZE_TASK, args=[scope, subject, session_id])
        out["status"] = "queued"
        return out
    await writer.flush()   # embedded: the session's last turns may still be in the spend batch
    subject_id = await db_call(selectors.session_subject, scope=scope, subject=subject)
    if subject_id is None:
        return out
    summary_id = await session_summarize(subject_id=subject_id, session_id=session_id)
    if summary_id is not None:
        out.update(status="summarized", summary_id=summary_id)
    return out


_last_sweep = {"at": time.monotonic()}


async def embedded_sweep() -> None:
    """Embedded mode: the spend writer's loop summarizes idle sessions and purges every minute."""
    if time.monotonic() - _last_sweep["at"] < SWEEP_SECONDS:
        return
    _last_sweep["at"] = time.monotonic()
    await sessions_sweep()


def register() -> None:
    if not redis_configured():
        writer.after_flush.append(embedded_sweep)
