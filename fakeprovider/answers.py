"""The bodies the fake provider answers with, in each API's shape.

Token counts are deterministic so tests can assert spend: a prompt costs one token per four
characters of its text (at least one), an answer is `tokens` words of "lorem " (capped by the
request's max_tokens), or for an echo model the prompt's own text.
"""
from __future__ import annotations

import itertools
import os
import time
from typing import Any, Iterator

import orjson

WORD = "lorem "
# What a …-summary model answers, whatever it is asked: a summarizer's output tests can look for.
SUMMARY = "The user is planning a trip to Lisbon in May and prefers answers in short bullet points."
_ids = itertools.count(1)
_PREFIX = f"{os.getpid():x}"


def next_id(prefix: str) -> str:
    """A completion id unique in this process (gateways look spend up by it)."""
    return f"{prefix}{_PREFIX}x{next(_ids):08x}"


def prompt_text(request: dict[str, Any]) -> str:
    """All the text a request sends: system prompt, messages, prompt or input."""
    parts: list[str] = []
    system = request.get("system")
    if isinstance(system, str):
        parts.append(system)
    elif isinstance(system, list):
        parts.extend(str(block.get("text", "")) for block in system if isinstance(block, dict))
    for message in request.get("messages") or ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(block.get("text", "")) for block in content
                         if isinstance(block, dict) and block.get("type") == "text")
    for field in ("prompt", "input"):
        value = request.get(field)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts.extend(str(item) for item in value)
    return "\n".join(parts)


def count_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def answer_words(request: dict[str, Any], tokens: int, echo: bool, summary: bool = False) -> list[str]:
    """The pieces of the answer, one per streamed chunk."""
    if summary:
        return [SUMMARY[i:i + 16] for i in range(0, len(SUMMARY), 16)]
    if echo:
        text = prompt_text(request)
        return [text[i:i + 16] for i in range(0, len(text), 16)] or [""]
    options = request.get("options")
    limit = (request.get("max_tokens") or request.get("max_completion_tokens")
             or (options.get("num_predict") if isinstance(options, dict) else None))
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        tokens = min(tokens, limit)
    return [WORD] * tokens


def completion_tokens(words: list[str], echo: bool, summary: bool = False) -> int:
    return count_tokens("".join(words)) if echo or summary else len(words)


def usage(prompt_tokens: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion}


def error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


# --------------------------------------------------------------------------- OpenAI


def openai_completion(request: dict[str, Any], model: str, words: list[str], completion: int, chat: bool) -> dict:
    text = "".join(words)
    choice = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"} if chat
              else {"index": 0, "text": text, "finish_reason": "stop"})
    return {"id": next_id("chatcmpl-fake" if chat else "cmpl-fake"),
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": model, "choices": [choice],
            "usage": usage(count_tokens(prompt_text(request)), completion)}


def openai_stream(request: dict[str, Any], model: str, words: list[str], completion: int,
                  chat: bool) -> tuple[list[bytes], list[bytes]]:
    """The SSE events of a streamed answer: (one per word, the closing ones)."""
    completion_id, created = next_id("chatcmpl-fake" if chat else "cmpl-fake"), int(time.time())
    kind = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict], **extra: Any) -> bytes:
        body = {"id": completion_id, "object": kind, "created": created, "model": model, "choices": choices, **extra}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    content = []
    for index, word in enumerate(words):
        if chat:
            delta = {"role": "assistant", "content": word} if index == 0 else {"content": word}
            content.append(event([{"index": 0, "delta": delta, "finish_reason": None}]))
        else:
            content.append(event([{"index": 0, "text": word, "finish_reason": None}]))
    closing = [event([{"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                      else {"index": 0, "text": "", "finish_reason": "stop"}])]
    if (request.get("stream_options") or {}).get("include_usage"):
        closing.append(event([], usage=usage(count_tokens(prompt_text(request)), completion)))
    closing.append(b"data: [DONE]\n\n")
    return content, closing


def openai_embeddings(request: dict[str, Any], model: str) -> dict:
    inputs = request.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    tokens = count_tokens(prompt_text(request))
    return {"object": "list", "model": model,
            "data": [{"object": "embedding", "index": i, "embedding": [0.1] * 8} for i in range(len(items))],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def openai_models(names: list[str]) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "fake"}
                                       for name in names]}


# --------------------------------------------------------------------------- Anthropic


def anthropic_message(request: dict[str, Any], model: str, words: list[str], completion: int) -> dict:
    return {"id": next_id("msg_fake"), "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "".join(words)}], "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": count_tokens(prompt_text(request)), "output_tokens": completion}}


def anthropic_stream(request: dict[str, Any], model: str, words: list[str],
                     completion: int) -> tuple[list[bytes], list[bytes]]:
    def event(name: str, data: dict) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    start = [
        event("message_start", {"type": "message_start", "message": {
            "id": next_id("msg_fake"), "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": count_tokens(prompt_text(request)), "output_tokens": 1}}}),
        event("content_block_start", {"type": "content_block_start", "index": 0,
                                      "content_block": {"type": "text", "text": ""}}),
    ]
    content = [event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                             "delta": {"type": "text_delta", "text": word}}) for word in words]
    closing = [
        event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {"output_tokens": completion}}),
        event("message_stop", {"type": "message_stop"}),
    ]
    # The opening events go out with the first word, so a cut stream has sent both.
    if content:
        content[0] = b"".join(start) + content[0]
    else:
        closing = start + closing
    return content, closing


# --------------------------------------------------------------------------- Ollama (native API)


def ollama_chat(request: dict[str, Any], model: str, words: list[str], completion: int, chat: bool) -> dict:
    body: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z", "done": True,
                            "done_reason": "stop", "prompt_eval_count": count_tokens(prompt_text(request)),
                            "eval_count": completion}
    if chat:
        body["message"] = {"role": "assistant", "content": "".join(words)}
    else:
        body["response"] = "".join(words)
    return body


def ollama_stream(request: dict[str, Any], model: str, words: list[str], completion: int,
                  chat: bool) -> tuple[list[bytes], list[bytes]]:
    def line(text: str, done: bool = False) -> bytes:
        body: dict[str, Any] = {"model": model, "created_at": "2026-01-01T00:00:00Z", "done": done}
        if chat:
            body["message"] = {"role": "assistant", "content": text}
        else:
            body["response"] = text
        if done:
            body.update(done_reason="stop", prompt_eval_count=count_tokens(prompt_text(request)),
                        eval_count=completion)
        return orjson.dumps(body) + b"\n"

    return [line(word) for word in words], [line("", done=True)]


def ollama_embed(request: dict[str, Any], model: str) -> dict:
    inputs = request.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    return {"model": model, "embeddings": [[0.1] * 8 for _ in items],
            "prompt_eval_count": count_tokens(prompt_text(request))}


def chunks(events: Iterator[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked framing of each event."""
    for data in events:
        yield b"%x\r\n%s\r\n" % (len(data), data)
