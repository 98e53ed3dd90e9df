"""The turn a request of a session adds to its spend event: what the client newly said and the answer,
encrypted here so that neither the spend queue nor a spool file holds it in clear."""
from __future__ import annotations

from typing import Any

import orjson

from accounts.keys import secret_encrypt
from gateway.context import RequestContext


def new_messages(messages: list[Any]) -> list[Any]:
    """The messages after the last assistant answer: what this request adds to the conversation."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "assistant":
            return messages[index + 1:]
    return messages


def answer_text(ctx: RequestContext) -> str:
    """The answer's text, streamed or not, OpenAI or Anthropic shaped ('' when there is none)."""
    if ctx.stream:
        return "".join(ctx.streamed_text)
    try:
        data = orjson.loads(ctx.response_body or b"")
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(data, dict):
        return ""
    choices = data.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        return content if isinstance(content, str) else ""
    content = data.get("content")
    if isinstance(content, list):
        return "".join(block.get("text", "") for block in content
                       if isinstance(block, dict) and isinstance(block.get("text"), str))
    return ""


def turn_event(ctx: RequestContext) -> dict[str, Any]:
    """The `memory` field of this request's spend event (stored by memory.services.turns_record)."""
    session = ctx.memory
    settings = session.settings
    turn = orjson.dumps({"messages": new_messages(session.messages), "answer": answer_text(ctx)}).decode()
    return {"scope": settings.scope, "subject": session.subject, "session_id": session.session_id,
            "model": settings.summarizer_model or ctx.model, "idle_minutes": settings.idle_minutes,
            "retention_days": settings.retention_days, "turn": secret_encrypt(turn)}
