"""OpenAI chat ⇄ Anthropic messages for the anthropic provider: chat requests translated to
Anthropic's shape, its answers and stream events back to OpenAI's.

Mapping follows the two public API references: system prompts, multi-part content (text,
images), tool definitions, tool calls and results, tool_choice, stop sequences, stop reasons,
usage and the streaming event sequence message_start … message_stop.
"""
from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from gateway.providers.base import Chunk, tool_arguments

# Anthropic requires max_tokens; OpenAI clients often omit it.
DEFAULT_MAX_TOKENS = 4096

STOP_TO_OPENAI = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "pause_turn": "stop", "refusal": "content_filter", "model_context_window_exceeded": "length"}


# --------------------------------------------------------------------------- OpenAI → Anthropic (requests)

def text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    if url.startswith("data:") and ";base64," in url:
        media_type, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content (string or parts) → Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            block = {"type": "text", "text": part.get("text", "")}
            if part.get("cache_control"):
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
        elif kind == "image_url":
            blocks.append(_image_block(part))
        elif kind == "file" and str((part.get("file") or {}).get("file_data", "")).startswith("data:"):
            media_type, data = part["file"]["file_data"][5:].split(";base64,", 1)
            blocks.append({"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}})
    return blocks


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Anthropic wants alternating roles: consecutive messages of one role are merged."""
    if not blocks:
        return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": list(blocks)})


def openai_to_anthropic_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat completions body → an Anthropic messages body."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for message in body.get("messages") or []:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(_blocks(content))
        elif role == "user":
            _append(messages, "user", _blocks(content))
        elif role == "assistant":
            blocks = _blocks(content)
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                blocks.append({"type": "tool_use", "id": call.get("id") or f"toolu_{uuid.uuid4().hex[:24]}",
                               "name": function.get("name", ""), "input": tool_arguments(function.get("arguments"))})
            if message.get("function_call"):
                function = message["function_call"]
                blocks.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}",
                               "name": function.get("name", ""), "input": tool_arguments(function.get("arguments"))})
            _append(messages, "assistant", blocks)
        elif role in ("tool", "function"):
            result: dict[str, Any] = {"type": "tool_result",
                                      "tool_use_id": message.get("tool_call_id") or message.get("name", ""),
                                      "content": content if isinstance(content, str) else _blocks(content)}
            _append(messages, "user", [result])
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    if system:
        out["system"] = system if any(b.get("type") != "text" or b.get("cache_control") for b in system) \
            else "\n\n".join(b["text"] for b in system)
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("stream"):
        out["stream"] = True
    if body.get("user"):
        out["metadata"] = {"user_id": body["user"]}
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type", "function") == "function"]
    if tools:
        out["tools"] = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                         "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}}}
                        for t in tools]
    choice = body.get("tool_choice")
    if choice is not None and tools:
        if choice == "auto":
            out["tool_choice"] = {"type": "auto"}
        elif choice == "required":
            out["tool_choice"] = {"type": "any"}
        elif choice == "none":
            out["tool_choice"] = {"type": "none"}
        elif isinstance(choice, dict) and choice.get("function"):
            out["tool_choice"] = {"type": "tool", "name": choice["function"].get("name", "")}
        if body.get("parallel_tool_calls") is False and "tool_choice" in out and out["tool_choice"]["type"] != "none":
            out["tool_choice"]["disable_parallel_tool_use"] = True
    return out


# --------------------------------------------------------------------------- Anthropic → OpenAI (answers)

def _openai_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    prompt = (usage.get("input_tokens") or 0) + (usage.get("cache_read_input_tokens") or 0) + (
        usage.get("cache_creation_input_tokens") or 0)
    completion = usage.get("output_tokens") or 0
    out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    if usage.get("cache_read_input_tokens"):
        out["prompt_tokens_details"] = {"cached_tokens": usage["cache_read_input_tokens"]}
    return out


def anthropic_to_openai_response(data: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic message → an OpenAI chat completion."""
    text, tool_calls, reasoning = [], [], []
    for block in data.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text", ""))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {})
            tool_calls.append({"id": block.get("id"), "type": "function",
                               "function": {"name": block.get("name"), "arguments": arguments}})
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    return {"id": "chatcmpl-" + str(data.get("id") or uuid.uuid4().hex), "object": "chat.completion",
            "created": int(time.time()), "model": data.get("model") or model,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": STOP_TO_OPENAI.get(data.get("stop_reason") or "end_turn", "stop")}],
            "usage": _openai_usage(data.get("usage"))}


async def anthropic_stream_to_openai(events: AsyncIterator[Chunk], model: str,
                                     include_usage: bool = True) -> AsyncIterator[Chunk]:
    """Anthropic stream events → OpenAI chat.completion.chunk objects."""
    cid, created, name = "chatcmpl-" + uuid.uuid4().hex, int(time.time()), model
    usage: dict[str, Any] = {}
    tool_index: dict[int, int] = {}  # Anthropic content block index → OpenAI tool_calls index

    def chunk(delta: dict[str, Any], finish: str | None = None) -> Chunk:
        return Chunk(data={"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                           "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    async for event in events:
        data = event.data
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message") or {}
            name = message.get("model") or name
            usage.update(message.get("usage") or {})
            yield chunk({"role": "assistant", "content": ""})
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = tool_index[data.get("index", 0)] = len(tool_index)
                yield chunk({"tool_calls": [{"index": index, "id": block.get("id"), "type": "function",
                                             "function": {"name": block.get("name"), "arguments": ""}}]})
            elif block.get("type") == "text" and block.get("text"):
                yield chunk({"content": block["text"]})
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                yield chunk({"content": delta.get("text", "")})
            elif delta.get("type") == "input_json_delta":
                index = tool_index.get(data.get("index", 0), 0)
                arguments = delta.get("partial_json", "")
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})
            elif delta.get("type") == "thinking_delta":
                yield chunk({"reasoning_content": delta.get("thinking", "")})
        elif kind == "message_delta":
            usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
            reason = (data.get("delta") or {}).get("stop_reason")
            yield chunk({}, STOP_TO_OPENAI.get(reason or "end_turn", "stop"))
        elif kind == "message_stop":
            break
    if include_usage and usage:
        yield Chunk(data={"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                          "choices": [], "usage": _openai_usage(usage)})
