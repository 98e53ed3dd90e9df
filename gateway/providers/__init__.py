"""Provider adapters, one module per provider family, behind gateway.providers.base.Provider."""
from __future__ import annotations

from gateway.providers import anthropic, azure, ollama, openai
from gateway.providers.base import Provider
from llmur.core.errors import LlmurError

_PROVIDERS: dict[str, Provider] = {p.PROVIDER.name: p.PROVIDER for p in (openai, azure, anthropic, ollama)}


def provider_for(name: str) -> Provider:
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise LlmurError(500, "api_error", f"Provider '{name}' is not supported by llmur "
                         f"(supported: {', '.join(sorted(_PROVIDERS))}).") from None
