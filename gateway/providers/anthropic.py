"""The Anthropic Messages API as a provider.

It takes OpenAI chat (translated by gateway/providers/anthropic_chat.py) or, on /v1/messages,
Anthropic messages (passed through untouched). The other direction, /v1/messages on any
OpenAI-compatible model, is gateway/providers/anthropic_messages.py.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from gateway.providers.anthropic_chat import (
    anthropic_stream_to_openai,
    anthropic_to_openai_response,
    openai_to_anthropic_request,
)
from gateway.providers.base import (
    CHAT,
    MESSAGES,
    Answer,
    Chunk,
    Provider,
    UpstreamRequest,
    UpstreamStreamError,
    dumps,
    loads,
)
from gateway.registry import Deployment

DEFAULT_API_BASE = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


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
