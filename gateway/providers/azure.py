"""Azure OpenAI: deployment-scoped URLs, an api-version query parameter and the api-key header.

The wire format is OpenAI's, so bodies pass through as for gateway.providers.openai.
"""
from __future__ import annotations

from urllib.parse import quote

from gateway.providers.base import CHAT, COMPLETION, EMBEDDING, join_url
from gateway.providers.openai import OpenAIProvider
from gateway.registry import Deployment
from llmur.core.errors import LlmurError

# LiteLLM's default when a deployment names none.
DEFAULT_API_VERSION = "2024-10-21"
PATHS = {CHAT: "/chat/completions", COMPLETION: "/completions", EMBEDDING: "/embeddings"}


class AzureProvider(OpenAIProvider):
    name = "azure"
    # stream_options only exists from api-version 2024-09-01 on; older deployments reject it, so
    # usage in streams is requested only when the client asks.
    force_stream_usage = False

    def url(self, dep: Deployment, call_type: str) -> str:
        if not dep.api_base:
            raise LlmurError(500, "api_error", f"Deployment {dep.id} (azure) has no api_base; an operator must set it.")
        version = dep.api_version or DEFAULT_API_VERSION
        base = dep.api_base.rstrip("/")
        if not base.endswith("/openai"):
            base += "/openai"
        path = f"/deployments/{quote(dep.model, safe='')}{PATHS[call_type]}"
        return join_url(base, f"{path}?api-version={quote(version)}")

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"api-key": api_key} if api_key else {}


PROVIDER = AzureProvider()
