"""OpenAI, and any OpenAI-compatible server (vLLM, LM Studio, llama.cpp, ...) through api_base.

The client already speaks this format, so requests go out with only the model replaced and
answers come back byte for byte.
"""
from __future__ import annotations

from typing import Any, AsyncIterator

from gateway.providers.base import (CHAT, COMPLETION, EMBEDDING, Answer, Chunk, Provider, UpstreamRequest,
                                    UpstreamStreamError, dumps, join_url, loads)
from gateway.registry import Deployment

DEFAULT_API_BASE = "https://api.openai.com/v1"
PATHS = {CHAT: "/chat/completions", COMPLETION: "/completions", EMBEDDING: "/embeddings"}


def openai_body(dep: Deployment, body: dict[str, Any], *, force_usage: bool) -> bytes:
    """The client's body for the upstream: its model name, and usage in streams so spend is exact."""
    out = dict(body)
    out["model"] = dep.model
    if force_usage and out.get("stream"):
        options = dict(out.get("stream_options") or {})
        options["include_usage"] = True
        out["stream_options"] = options
    return dumps(out)


async def openai_chunks(events: AsyncIterator[tuple[str | None, bytes, bytes]]) -> AsyncIterator[Chunk]:
    """OpenAI SSE events → Chunks carrying their raw event for pass-through; stops at [DONE]."""
    async for _name, data, raw in events:
        if data == b"[DONE]":
            return
        if not data:
            continue
        parsed = loads(data)
        if isinstance(parsed, dict) and parsed.get("error") and "choices" not in parsed:
            error = parsed["error"] if isinstance(parsed["error"], dict) else {"message": str(parsed["error"])}
            raise UpstreamStreamError(str(error.get("message") or "upstream stream error"),
                                      error.get("type") or "api_error", error.get("code"))
        yield Chunk(data=parsed, raw=raw)


class OpenAIProvider(Provider):
    name = "openai"
    force_stream_usage = True
    openai_sse = True

    def base_url(self, dep: Deployment) -> str:
        return dep.api_base or DEFAULT_API_BASE

    def url(self, dep: Deployment, call_type: str) -> str:
        return join_url(self.base_url(dep), PATHS[call_type])

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def build_request(self, dep: Deployment, call_type: str, body: dict[str, Any], *, api_key: str | None,
                      client_headers: dict[str, str]) -> UpstreamRequest:
        headers = {"content-type": "application/json", **self.auth_headers(api_key)}
        if dep.extra.get("organization"):
            headers["openai-organization"] = str(dep.extra["organization"])
        return UpstreamRequest(self.url(dep, call_type), headers,
                               openai_body(dep, body, force_usage=self.force_stream_usage))

    def parse_response(self, dep: Deployment, call_type: str, raw: bytes) -> Answer:
        return Answer(data=loads(raw), raw=raw)

    def parse_stream(self, dep: Deployment, call_type: str, events) -> AsyncIterator[Chunk]:
        return openai_chunks(events)


PROVIDER = OpenAIProvider()
