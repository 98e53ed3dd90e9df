"""One access line per gateway request, on the logger `llmur.access`.

Text format: `request_id=… [client_request_id=…] key=… model=… deployment=… status=200 prompt_tokens=… completion_tokens=…
latency_ms=…`; with `log_format: json` the same values are fields of the JSON line. The line names a
key by its alias or display form (sk-…a1b2), never the key itself, and carries no prompt unless
the config says `log_prompts: true`. `access_log: false` turns the lines off.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings

logger = logging.getLogger("llmur.access")


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
    if not logger.isEnabledFor(logging.INFO):
        return
    principal = ctx.principal
    ended = ctx.ended_monotonic or time.monotonic()
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
    _write(fields)


def request_rejected(error: Any, request_id: str, client_request_id: str = "") -> None:
    """The line for a request refused before admission: who and what are unknown or not trusted yet."""
    if not logger.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {"request_id": request_id}
    if client_request_id:
        fields["client_request_id"] = client_request_id
    _write({**fields, "status": error.status, "error": error.type})
