"""The last step of every admitted request, run exactly once however it ended: free its routing
slot, queue its opt-in request log, settle its reservation and book its spend, record its metrics."""
from __future__ import annotations

import logging
import time

from gateway import admission, request_log, router
from gateway.context import RequestContext
from llmur.core import metrics

logger = logging.getLogger("llmur.gateway.pipeline")


async def settle(ctx: RequestContext) -> None:
    if ctx.settled:
        return
    ctx.settled = True
    ctx.ended_monotonic = time.monotonic()
    try:
        router.release(ctx)
        # Before settling: a cancelled stream is cancelled again inside the settle's await below.
        if ctx.principal is not None and ctx.principal.log_requests:
            request_log.request_log_submit(ctx)   # queues for a background thread; never waits or raises
        # Not shielded: settle queues its booking before it first awaits, so a cancelled request
        # (client gone) still books what it used, exactly once, without a task per request.
        await admission.settle(ctx)
    except Exception:  # noqa: BLE001 - accounting failure must not turn a served answer into an error
        logger.exception("request %s: settling failed", ctx.request_id)
    finally:
        metrics.request_finished(ctx)  # after settle, which prices the request
