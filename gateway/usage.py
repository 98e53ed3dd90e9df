"""Reading what an upstream answer says about itself: token usage and the answer's id."""
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
