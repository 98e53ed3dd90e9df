"""The small interface every provider adapter implements, and what they share.

The gateway speaks two client formats: OpenAI (chat, completion, embedding) and Anthropic
(messages). Internally OpenAI chat is the common format: an adapter turns it into its native
request and its native answer back into OpenAI chat; /v1/messages on a non-Anthropic model is
translated to OpenAI chat first (gateway.providers.anthropic_messages). Where the client's format
is the provider's own, the upstream bytes are passed through untouched (`raw`), only read for usage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator

import orjson

from gateway.registry import Deployment
from llmur.core.errors import LlmurError

CHAT, COMPLETION, EMBEDDING, MESSAGES = "chat", "completion", "embedding", "messages"


@dataclass(slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Answer:
    """A complete upstream answer: `data` in the call's client format; `raw` when it may be sent as-is."""

    data: dict[str, Any]
    raw: bytes | None = None


@dataclass(slots=True)
class Chunk:
    """One streamed event in the call's client format; `raw` is the upstream SSE event when passable."""

    data: dict[str, Any]
    raw: bytes | None = None
    event: str | None = None      # the SSE event name (Anthropic streams)


class UpstreamStreamError(Exception):
    """The upstream sent an error in the middle of a stream."""

    def __init__(self, message: str, type: str = "api_error", code: str | None = None):
        super().__init__(message)
        self.message, self.type, self.code = message, type, code


class Provider:
    """Build request, parse response, parse stream, map errors — for one provider family."""

    name = ""
    # The client format the provider speaks natively for chat: "openai" or "anthropic".
    native = "openai"
    call_types = frozenset({CHAT, COMPLETION, EMBEDDING})
    # True when streams are OpenAI SSE read exactly as gateway.providers.openai.openai_chunks reads them,
    # so the pipeline may relay them through its fused pass-through (gateway.streaming.openai_passthrough).
    openai_sse = False
    # How the upstream frames a stream: "sse" (server-sent events) or "ndjson" (one JSON object a line).
    stream_framing = "sse"

    def build_request(self, dep: Deployment, call_type: str, body: dict[str, Any], *, api_key: str | None,
                      client_headers: dict[str, str]) -> UpstreamRequest:
        raise NotImplementedError

    def parse_response(self, dep: Deployment, call_type: str, raw: bytes) -> Answer:
        raise NotImplementedError

    def parse_stream(self, dep: Deployment, call_type: str, body: AsyncIterator[bytes]) -> AsyncIterator[Chunk]:
        raise NotImplementedError

    def map_error(self, dep: Deployment, status: int, raw: bytes, headers: dict[str, str],
                  api_key: str | None) -> LlmurError:
        return upstream_error(dep, status, raw, headers, api_key)


# --------------------------------------------------------------------------- shared helpers

def loads(raw: bytes) -> Any:
    return orjson.loads(raw)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def tool_arguments(raw: Any) -> dict[str, Any]:
    """A tool call's arguments as an object: OpenAI sends a JSON string, Anthropic and Ollama an object."""
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw or "{}")
    except (TypeError, orjson.JSONDecodeError):
        return {"arguments": raw}
    return value if isinstance(value, dict) else {"value": value}


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + path


def scrub(text: str, secret: str | None) -> str:
    """Remove a provider key (and its usual display forms) from upstream text before a client sees it."""
    if secret and len(secret) >= 8:
        text = text.replace(secret, "***")
        text = text.replace(secret[:3] + "*" * 4 + secret[-4:], "***")
    return text


def error_fields(raw: bytes) -> tuple[str, str | None, str | None, str | None]:
    """(message, type, code, param) from an OpenAI, Anthropic or Ollama error body, or its text."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:500].decode("utf-8", "replace").strip(), None, None, None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            return (str(error.get("message") or ""), error.get("type"), None if code is None else str(code),
                    error.get("param"))
        if isinstance(error, str):
            return error, None, None, None
        if body.get("message"):
            return str(body["message"]), body.get("type"), None, None
    return raw[:500].decode("utf-8", "replace").strip(), None, None, None


RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def upstream_error(dep: Deployment, status: int, raw: bytes, headers: dict[str, str],
                   api_key: str | None) -> LlmurError:
    """Map an upstream error answer to the client's error.

    Client errors (400, 404, 413, 422, ...) pass through with the upstream message and code, so a
    caller sees e.g. context_length_exceeded. Upstream 401/403 mean the gateway's provider
    credentials are wrong — the client's key is fine, so it is 502, not 401. 429 stays 429 (with
    Retry-After); everything else is 502.
    """
    message, etype, code, param = error_fields(raw)
    message = scrub(message, api_key) or f"HTTP {status}"
    out_headers = {}
    if headers.get("retry-after"):
        out_headers["retry-after"] = headers["retry-after"]
    if status in (401, 403):
        error = LlmurError(502, "api_error", f"Upstream deployment {dep.id} ({dep.provider}) rejected the gateway's "
                           f"credentials (HTTP {status}). An operator must fix the deployment's api_key.")
    elif status == 429:
        error = LlmurError(429, "rate_limit_error", f"Upstream deployment {dep.id} is rate limited: {message}",
                           code=code or "429", headers=out_headers)
    elif 400 <= status < 500:
        error = LlmurError(status, etype or "invalid_request_error", message, param=param, code=code or str(status))
    else:
        error = LlmurError(502, "api_error", f"Upstream deployment {dep.id} failed with HTTP {status}: {message}")
    error.retryable = status in RETRYABLE_STATUSES
    return error
