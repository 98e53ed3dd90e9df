"""Reading what an upstream answer says about itself: token usage, the answer's id and, for a
stream, the content it carried (counted and kept, so billing can estimate tokens when the upstream
never reports usage). One reader per stream format, used by every provider's relay path."""
from __future__ import annotations

from typing import Any

from gateway.context import RequestContext, Usage


def usage_from(data: dict[str, Any], usage: Usage) -> bool:
    """Fill usage from an OpenAI or Anthropic usage object; True when one was present."""
    found = data.get("usage")
    if not isinstance(found, dict):
        return False
    if "input_tokens" in found or "output_tokens" in found:
        prompt = (found.get("input_tokens") or 0) + (found.get("cache_read_input_tokens") or 0) + (
            found.get("cache_creation_input_tokens") or 0)
        if prompt:
            usage.prompt_tokens = prompt
        if found.get("output_tokens") is not None:
            usage.completion_tokens = found["output_tokens"]
        return True
    usage.prompt_tokens = found.get("prompt_tokens") or 0
    usage.completion_tokens = found.get("completion_tokens") or 0
    return True


def note_response_id(ctx: RequestContext, data: dict[str, Any]) -> None:
    """Keep the upstream answer's id (chatcmpl-…, msg_…): spend can be looked up by it."""
    if not ctx.response_id:
        found = data.get("id")
        if isinstance(found, str):
            ctx.response_id = found[:128]


def tally_openai_chunk(ctx: RequestContext, data: dict[str, Any], keep_usage: bool) -> bool:
    """Read one OpenAI stream chunk into ctx; False for a usage-only chunk the client did not ask for."""
    if not ctx.response_id:
        note_response_id(ctx, data)
    if data.get("usage"):
        ctx.usage_seen = usage_from(data, ctx.usage)
        if not data.get("choices") and not keep_usage:
            return False
    choices = data.get("choices")
    if choices:
        ctx.content_chunks += 1
        choice = choices[0]
        piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
        if isinstance(piece, str):
            ctx.streamed_text.append(piece)
    return True


def tally_anthropic_event(ctx: RequestContext, data: dict[str, Any]) -> None:
    """Read one Anthropic Messages stream event into ctx."""
    kind = data.get("type")
    if kind == "content_block_delta":
        ctx.content_chunks += 1
        piece = (data.get("delta") or {}).get("text")
        if isinstance(piece, str):
            ctx.streamed_text.append(piece)
    elif kind == "message_delta":
        ctx.usage_seen = usage_from(data, ctx.usage)
    elif kind == "message_start":
        message = data.get("message") or {}
        usage_from(message, ctx.usage)
        note_response_id(ctx, message)
