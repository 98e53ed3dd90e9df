"""Celery tasks of the gateway app: the opt-in request log, and cross-session memory's summarization."""
from __future__ import annotations

import asyncio
from typing import Any

from celery import shared_task

from billing.connections import redis_configured
from billing.queue import drain
from gateway import http
from gateway.memory.summarize import session_summarize, sessions_sweep
from gateway.request_log import STORE_TASK, request_log_write
from memory.selectors import session_subject
from gateway.request_log import request_log_purge as purge


@shared_task(name=STORE_TASK, ignore_result=True, acks_late=True)
def request_log_store(row: dict[str, Any]) -> int:
    """Store one redacted request log row (gateway.request_log redacted it before queueing)."""
    return request_log_write(rows=[row])


@shared_task(name="gateway.request_log_purge", ignore_result=True)
def request_log_purge() -> int:
    """Delete request logs older than request_logging.retention_days."""
    return purge()


def _run(coro) -> Any:
    """Run a coroutine of the request path's code in this worker, closing its HTTP and Redis clients after."""
    async def run() -> Any:
        try:
            return await coro
        finally:
            await http.close_clients()

    return asyncio.run(run())


@shared_task(name="gateway.memory_summarize", ignore_result=True, acks_late=True)
def memory_summarize(scope: str, subject: str, session_id: str) -> int | None:
    """Summarize one closed session (its last turns are drained from the spend queue first)."""
    if redis_configured():
        drain(max_seconds=5.0)
    subject_id = session_subject(scope=scope, subject=subject)
    if subject_id is None:
        return None
    return _run(session_summarize(subject_id=subject_id, session_id=session_id))


@shared_task(name="gateway.memory_sweep", ignore_result=True)
def memory_sweep() -> dict[str, int]:
    """Summarize the sessions gone idle; delete turns and summaries past their retention."""
    return _run(sessions_sweep())
