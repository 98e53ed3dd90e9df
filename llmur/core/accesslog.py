"""One access line per gateway request, on the logger `llmur.access`.

Text format: `request_id=… [client_request_id=…] key=… model=… deployment=… status=200 prompt_tokens=… completion_tokens=…
latency_ms=…`; with `log_format: json` the same values are fields of the JSON line. The line names a
key by its alias or display form (sk-…a1b2), never the key itself, and carries no prompt unless
the config says `log_prompts: true`. `access_log: false` turns the lines off.

Lines are written off the response path: inside an event loop a request's line is queued and the
queue is written once per loop iteration (loop.call_soon), after the answer has gone out, so
neither building the record nor the write to the log stream delays a response. Outside a loop
(management commands, sync code) a line is written at once.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from django.conf import settings

from llmur.core.lifespan import on_shutdown

logger = logging.getLogger("llmur.access")


_pending: list[tuple[Any, ...]] = []
_flush_loop: asyncio.AbstractEventLoop | None = None


def _defer(build, *args: Any) -> None:
    """Queue build(*args) for the running loop's next iteration (or run it now without a loop)."""
    global _flush_loop
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _emit(build, args)
        return
    _pending.append((build, args))
    if _flush_loop is not loop:
        # One flush per loop iteration; a flush left scheduled on a loop that has since closed
        # (tests) is replaced, and the new one writes its lines too.
        _flush_loop = loop
        loop.call_soon(flush)


def flush() -> None:
    """Write the queued lines, oldest first."""
    global _flush_loop
    _flush_loop = None
    batch = _pending[:]
    _pending.clear()
    for build, args in batch:
        _emit(build, args)


@on_shutdown
async def _flush_at_shutdown() -> None:
    flush()


def _emit(build, args: tuple[Any, ...]) -> None:
    try:
        _write(build(*args))
    except Exception:  # noqa: BLE001 - logging failure must never fail a request
        logging.getLogger("llmur.metrics").exception("writing the access line failed")


def _write(fields: dict[str, Any]) -> None:
    text = " ".join(f"{name}={_text(value)}" for name, value in fields.items() if name != "prompt")
    if "prompt" in fields:
        text += f" prompt={_text(fields['prompt'])}"
    logger.info(text, extra={"fields": fields})


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    text = value if isinstance(value, str) else str(value)
    return f'"{text}"' if (" " in text or not text) else text


def request_finished(ctx: Any) -> None:
    """The line for an admitted request, once it is settled."""
    if logger.isEnabledFor(logging.INFO):
        _defer(_finished_fields, ctx, ctx.ended_monotonic or time.monotonic())


def _finished_fields(ctx: Any, ended: float) -> dict[str, Any]:
    principal = ctx.principal
    fields: dict[str, Any] = {
        "request_id": ctx.request_id,
        **({"client_request_id": ctx.client_request_id} if ctx.client_request_id else {}),
        "key": (principal.alias or principal.display) if principal is not None else "",
        "team": principal.team_id if principal is not None else None,
        "call": ctx.call_type,
        "model": ctx.model,
        "deployment": ctx.deployment_id,
        "status": ctx.http_status,
        "stream": ctx.stream,
        "cache_hit": ctx.cache_hit,
        "prompt_tokens": ctx.usage.prompt_tokens,
        "completion_tokens": ctx.usage.completion_tokens,
        "latency_ms": round((ended - ctx.started_monotonic) * 1000, 1),
    }
    if ctx.stream and ctx.first_byte_monotonic is not None:
        fields["ttft_ms"] = round((ctx.first_byte_monotonic - ctx.started_monotonic) * 1000, 1)
    if settings.LLMUR.config.log_prompts:
        body = ctx.body
        fields["prompt"] = body.get("messages") or body.get("prompt") or body.get("input")
    return fields


def request_rejected(error: Any, request_id: str, client_request_id: str = "") -> None:
    """The line for a request refused before admission: who and what are unknown or not trusted yet."""
    if logger.isEnabledFor(logging.INFO):
        _defer(_rejected_fields, request_id, client_request_id, error.status, error.type)


def _rejected_fields(request_id: str, client_request_id: str, status: int, error_type: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"request_id": request_id}
    if client_request_id:
        fields["client_request_id"] = client_request_id
    return {**fields, "status": status, "error": error_type}
