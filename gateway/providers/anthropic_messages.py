"""Anthropic messages ⇄ OpenAI chat for /v1/messages on any OpenAI-compatible model: the
request translated to OpenAI chat, the answer and stream events back to Anthropic's shape.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from gateway.providers.anthropic_chat import text_of
from gateway.providers.base import Chunk, tool_arguments
from gateway.streaming import anthropic_event

STOP_TO_ANTHROPIC = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                     "content_filter": "refusal"}


# --------------------------------------------------------------------------- Anthropic → OpenAI (requests)

def _openai_content(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            source = block.get("source") or {}
            url = (f"data:{source.get('media_type')};base64,{source.get('data')}" if source.get("type") == "base64"
                   else source.get("url", ""))
            parts.append({"type": "image_url", "image_url": {"url": url}})
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def anthropic_to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic messages body → an OpenAI chat completions body (model unchanged)."""
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": system if isinstance(system, str) else text_of(system)})
    for message in body.get("messages") or []:
        role, content = message.get("role"), message.get("content")
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
            continue
        blocks = [b for b in content or [] if isinstance(b, dict)]
        if role == "user":
            # Tool results answer the previous assistant turn, so they come first, as "tool" messages.
            for block in blocks:
                if block.get("type") == "tool_result":
                    result = block.get("content")
                    text = result if isinstance(result, str) else text_of(result)
                    if block.get("is_error"):
                        text = f"Error: {text}"
                    messages.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text})
            rest = [b for b in blocks if b.get("type") != "tool_result"]
            if rest:
                messages.append({"role": "user", "content": _openai_content(rest)})
        else:
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            calls = [{"id": b.get("id"), "type": "function",
                      "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})}}
                     for b in blocks if b.get("type") == "tool_use"]
            out: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                out["tool_calls"] = calls
            messages.append(out)
    result: dict[str, Any] = {"model": body.get("model"), "messages": messages, "max_tokens": body.get("max_tokens")}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            result[name] = body[name]
    if body.get("stop_sequences"):
        result["stop"] = list(body["stop_sequences"])
    if body.get("stream"):
        result["stream"] = True
        result["stream_options"] = {"include_usage": True}
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        result["user"] = str(user)
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
    if tools:
        result["tools"] = [{"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                                             "parameters": t["input_schema"]}} for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and tools:
        kind = choice.get("type")
        result["tool_choice"] = ({"type": "function", "function": {"name": choice.get("name", "")}} if kind == "tool"
                                 else {"auto": "auto", "any": "required", "none": "none"}.get(kind, "auto"))
        if choice.get("disable_parallel_tool_use"):
            result["parallel_tool_calls"] = False
    return result


# --------------------------------------------------------------------------- OpenAI → Anthropic (answers)

def openai_to_anthropic_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat completion → an Anthropic message."""
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": text_of(message["content"])})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": function.get("name", ""), "input": tool_arguments(function.get("arguments"))})
    usage = data.get("usage") or {}
    return {"id": "msg_" + str(data.get("id") or uuid.uuid4().hex), "type": "message", "role": "assistant",
            "model": model, "content": content,
            "stop_reason": STOP_TO_ANTHROPIC.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None,
            "usage": {"input_tokens": usage.get("prompt_tokens") or 0,
                      "output_tokens": usage.get("completion_tokens") or 0}}


async def openai_stream_to_anthropic(chunks: AsyncIterator[Chunk], model: str) -> AsyncIterator[bytes]:
    """OpenAI chat.completion.chunk objects → the Anthropic event sequence, framed as SSE."""
    started = False
    open_block: tuple[str, int] | None = None   # ("text" | "tool", OpenAI tool index)
    block_index = -1
    stop_reason = "end_turn"
    usage = {"input_tokens": 0, "output_tokens": 0}
    message_id = "msg_" + uuid.uuid4().hex

    def start() -> bytes:
        return anthropic_event({"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": dict(usage)}})

    async for chunk in chunks:
        data = chunk.data
        if not started:
            started = True
            yield start()
        if data.get("usage"):
            usage["input_tokens"] = data["usage"].get("prompt_tokens") or 0
            usage["output_tokens"] = data["usage"].get("completion_tokens") or 0
        for choice in data.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if open_block is None or open_block[0] != "text":
                    if open_block is not None:
                        yield anthropic_event({"type": "content_block_stop", "index": block_index})
                    block_index += 1
                    open_block = ("text", -1)
                    yield anthropic_event({"type": "content_block_start", "index": block_index,
                                           "content_block": {"type": "text", "text": ""}})
                yield anthropic_event({"type": "content_block_delta", "index": block_index,
                                       "delta": {"type": "text_delta", "text": delta["content"]}})
            for call in delta.get("tool_calls") or []:
                index = call.get("index", 0)
                function = call.get("function") or {}
                if open_block != ("tool", index):
                    if open_block is not None:
                        yield anthropic_event({"type": "content_block_stop", "index": block_index})
                    block_index += 1
                    open_block = ("tool", index)
                    yield anthropic_event({"type": "content_block_start", "index": block_index, "content_block": {
                        "type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                        "name": function.get("name", ""), "input": {}}})
                if function.get("arguments"):
                    delta_json = {"type": "input_json_delta", "partial_json": function["arguments"]}
                    yield anthropic_event({"type": "content_block_delta", "index": block_index, "delta": delta_json})
            if choice.get("finish_reason"):
                stop_reason = STOP_TO_ANTHROPIC.get(choice["finish_reason"], "end_turn")
    if not started:
        yield start()
    if open_block is not None:
        yield anthropic_event({"type": "content_block_stop", "index": block_index})
    yield anthropic_event({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                           "usage": dict(usage)})
    yield anthropic_event({"type": "message_stop"})
