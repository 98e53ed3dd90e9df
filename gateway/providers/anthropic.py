"""Anthropic Messages API, and the translation OpenAI chat ⇄ Anthropic messages in both directions.

As a provider it takes OpenAI chat (translated here) or, on /v1/messages, Anthropic messages
(passed through untouched). The module-level functions also translate the other way round, so
/v1/messages works on any OpenAI-compatible model: requests, answers and stream events.
Mapping follows the two public API references: system prompts, multi-part content (text,
images), tool definitions, tool calls and results, tool_choice, stop sequences, stop reasons,
usage and the streaming event sequence message_start … message_stop.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any, AsyncIterator

from gateway.providers.base import (CHAT, MESSAGES, Answer, Chunk, Provider, UpstreamRequest, UpstreamStreamError,
                                    dumps, loads, tool_arguments)
from gateway.registry import Deployment
from gateway.streaming import anthropic_event

DEFAULT_API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
# Anthropic requires max_tokens; OpenAI clients often omit it.
DEFAULT_MAX_TOKENS = 4096

STOP_TO_OPENAI = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "pause_turn": "stop", "refusal": "content_filter", "model_context_window_exceeded": "length"}
STOP_TO_ANTHROPIC = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                     "content_filter": "refusal"}


# --------------------------------------------------------------------------- OpenAI → Anthropic (requests)

def _text_of(content: Any) -> str:
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
        messages.append({"role": "system", "content": system if isinstance(system, str) else _text_of(system)})
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
                    text = result if isinstance(result, str) else _text_of(result)
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
        content.append({"type": "text", "text": _text_of(message["content"])})
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


# --------------------------------------------------------------------------- the provider

async def anthropic_events(events: AsyncIterator[tuple[str | None, bytes, bytes]]) -> AsyncIterator[Chunk]:
    """Anthropic SSE events → Chunks (raw kept for pass-through); an `error` event raises."""
    async for name, data, raw in events:
        if not data:
            continue
        parsed = loads(data)
        if not isinstance(parsed, dict):
            continue
        if parsed.get("type") == "error" or name == "error":
            error = parsed.get("error") or {}
            raise UpstreamStreamError(str(error.get("message") or "upstream stream error"),
                                      error.get("type") or "api_error")
        if parsed.get("type") == "ping":
            continue
        yield Chunk(data=parsed, raw=raw, event=name)


class AnthropicProvider(Provider):
    name = "anthropic"
    native = "anthropic"
    call_types = frozenset({CHAT, MESSAGES})

    def url(self, dep: Deployment) -> str:
        base = (dep.api_base or DEFAULT_API_BASE).rstrip("/")
        if base.endswith("/v1/messages"):
            return base
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def build_request(self, dep: Deployment, call_type: str, body: dict[str, Any], *, api_key: str | None,
                      client_headers: dict[str, str]) -> UpstreamRequest:
        headers = {"content-type": "application/json",
                   "anthropic-version": client_headers.get("anthropic-version") or API_VERSION}
        if client_headers.get("anthropic-beta"):
            headers["anthropic-beta"] = client_headers["anthropic-beta"]
        if api_key:
            headers["x-api-key"] = api_key
        if call_type == MESSAGES:
            payload = dict(body)
            payload["model"] = dep.model
        else:
            payload = openai_to_anthropic_request(body, dep.model)
        return UpstreamRequest(self.url(dep), headers, dumps(payload))

    def parse_response(self, dep: Deployment, call_type: str, raw: bytes) -> Answer:
        data = loads(raw)
        if call_type == MESSAGES:
            return Answer(data=data, raw=raw)
        return Answer(data=anthropic_to_openai_response(data, dep.model_name))

    def parse_stream(self, dep: Deployment, call_type: str, events) -> AsyncIterator[Chunk]:
        chunks = anthropic_events(events)
        if call_type == MESSAGES:
            return chunks
        return anthropic_stream_to_openai(chunks, dep.model_name)


PROVIDER = AnthropicProvider()
