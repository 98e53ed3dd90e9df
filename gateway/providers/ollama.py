"""Ollama's native API: /api/chat (chat), /api/generate (text completions), /api/embed (embeddings).

Answers and newline-delimited JSON streams are translated to the OpenAI shapes.
"""
from __future__ import annotations

import json
import time
import uuid
from typing import Any, AsyncIterator

from gateway.providers.base import (CHAT, COMPLETION, EMBEDDING, Answer, Chunk, Provider, UpstreamRequest,
                                    UpstreamStreamError, dumps, join_url, loads, tool_arguments)
from gateway.registry import Deployment

DEFAULT_API_BASE = "http://localhost:11434"
PATHS = {CHAT: "/api/chat", COMPLETION: "/api/generate", EMBEDDING: "/api/embed"}
# OpenAI sampling parameters → Ollama `options`.
OPTIONS = {"temperature": "temperature", "top_p": "top_p", "seed": "seed", "max_tokens": "num_predict",
           "max_completion_tokens": "num_predict", "frequency_penalty": "frequency_penalty",
           "presence_penalty": "presence_penalty"}


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        item: dict[str, Any] = {"role": "system" if role == "developer" else role}
        if isinstance(content, list):
            parts = [p for p in content if isinstance(p, dict)]
            item["content"] = "".join(p.get("text", "") for p in parts if p.get("type") == "text")
            images = [p["image_url"]["url"].split(";base64,", 1)[1] for p in content
                      if isinstance(p, dict) and p.get("type") == "image_url"
                      and ";base64," in str((p.get("image_url") or {}).get("url", ""))]
            if images:
                item["images"] = images
        else:
            item["content"] = content or ""
        if message.get("tool_calls"):
            item["tool_calls"] = [{"function": {"name": c["function"]["name"],
                                                "arguments": tool_arguments(c["function"].get("arguments"))}}
                                  for c in message["tool_calls"]]
        if role == "tool" and message.get("name"):
            item["tool_name"] = message["name"]
        out.append(item)
    return out


def ollama_request(call_type: str, body: dict[str, Any], model: str) -> dict[str, Any]:
    """An OpenAI chat/completion/embedding body → Ollama's native body."""
    if call_type == EMBEDDING:
        return {"model": model, "input": body.get("input")}
    out: dict[str, Any] = {"model": model, "stream": bool(body.get("stream"))}
    if call_type == CHAT:
        out["messages"] = _messages(body.get("messages") or [])
        if body.get("tools"):
            out["tools"] = body["tools"]
    else:
        prompt = body.get("prompt")
        out["prompt"] = prompt if isinstance(prompt, str) else "".join(str(p) for p in prompt or [])
    options = {target: body[source] for source, target in OPTIONS.items() if body.get(source) is not None}
    if body.get("stop"):
        options["stop"] = [body["stop"]] if isinstance(body["stop"], str) else list(body["stop"])
    if options:
        out["options"] = options
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_object":
            out["format"] = "json"
        elif response_format.get("type") == "json_schema":
            out["format"] = (response_format.get("json_schema") or {}).get("schema") or "json"
    return out


def _usage(data: dict[str, Any]) -> dict[str, int]:
    prompt, completion = data.get("prompt_eval_count") or 0, data.get("eval_count") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish(data: dict[str, Any], tool_calls: bool) -> str:
    if tool_calls:
        return "tool_calls"
    return "length" if data.get("done_reason") == "length" else "stop"


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": (c.get("function") or {}).get("name", ""),
                          "arguments": json.dumps((c.get("function") or {}).get("arguments") or {})}}
            for c in message.get("tool_calls") or []]


def ollama_response(call_type: str, data: dict[str, Any], model: str) -> dict[str, Any]:
    """An Ollama answer → the OpenAI shape of the call."""
    created = int(time.time())
    if call_type == EMBEDDING:
        prompt = data.get("prompt_eval_count") or 0
        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": e}
                         for i, e in enumerate(data.get("embeddings") or [])],
                "usage": {"prompt_tokens": prompt, "total_tokens": prompt}}
    if call_type == COMPLETION:
        return {"id": "cmpl-" + uuid.uuid4().hex, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": data.get("response", ""), "logprobs": None,
                             "finish_reason": _finish(data, False)}], "usage": _usage(data)}
    message = data.get("message") or {}
    calls = _tool_calls(message)
    out_message: dict[str, Any] = {"role": "assistant", "content": message.get("content", "")}
    if calls:
        out_message["tool_calls"] = calls
    return {"id": "chatcmpl-" + uuid.uuid4().hex, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": out_message, "logprobs": None,
                         "finish_reason": _finish(data, bool(calls))}],
            "usage": _usage(data)}


async def ollama_stream(call_type: str, lines: AsyncIterator[bytes], model: str) -> AsyncIterator[Chunk]:
    """Ollama's NDJSON stream → OpenAI chunks, ending with a usage chunk."""
    cid, created, first = ("chatcmpl-" if call_type == CHAT else "cmpl-") + uuid.uuid4().hex, int(time.time()), True
    kind = "chat.completion.chunk" if call_type == CHAT else "text_completion"
    async for line in lines:
        data = loads(line)
        if data.get("error"):
            raise UpstreamStreamError(str(data["error"]))
        if call_type == CHAT:
            message = data.get("message") or {}
            delta: dict[str, Any] = {"content": message.get("content", "")}
            if first:
                delta["role"] = "assistant"
            calls = _tool_calls(message)
            if calls:
                delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(calls)]
            choice = {"index": 0, "delta": delta, "logprobs": None,
                      "finish_reason": _finish(data, bool(calls)) if data.get("done") else None}
        else:
            choice = {"index": 0, "text": data.get("response", ""), "logprobs": None,
                      "finish_reason": _finish(data, False) if data.get("done") else None}
        first = False
        yield Chunk(data={"id": cid, "object": kind, "created": created, "model": model, "choices": [choice]})
        if data.get("done"):
            yield Chunk(data={"id": cid, "object": kind, "created": created, "model": model, "choices": [],
                              "usage": _usage(data)})
            return


class OllamaProvider(Provider):
    name = "ollama"
    stream_framing = "ndjson"

    def build_request(self, dep: Deployment, call_type: str, body: dict[str, Any], *, api_key: str | None,
                      client_headers: dict[str, str]) -> UpstreamRequest:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return UpstreamRequest(join_url(dep.api_base or DEFAULT_API_BASE, PATHS[call_type]), headers,
                               dumps(ollama_request(call_type, body, dep.model)))

    def parse_response(self, dep: Deployment, call_type: str, raw: bytes) -> Answer:
        return Answer(data=ollama_response(call_type, loads(raw), dep.model_name))

    def parse_stream(self, dep: Deployment, call_type: str, lines) -> AsyncIterator[Chunk]:
        return ollama_stream(call_type, lines, dep.model_name)


PROVIDER = OllamaProvider()
