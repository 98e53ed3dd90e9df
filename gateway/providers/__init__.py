"""Provider adapters, one module per provider family, behind gateway.providers.base.Provider."""
from __future__ import annotations

from gateway.providers.base import Provider
from llmur.core.errors import LlmurError


def _load() -> dict[str, Provider]:
    from gateway.providers import anthropic, azure, ollama, openai

    return {p.PROVIDER.name: p.PROVIDER for p in (openai, azure, anthropic, ollama)}


_PROVIDERS: dict[str, Provider] = {}


def provider_for(name: str) -> Provider:
    if not _PROVIDERS:
        _PROVIDERS.update(_load())
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise LlmurError(500, "api_error", f"Provider '{name}' is not supported by llmur "
                         f"(supported: {', '.join(sorted(_PROVIDERS))}).") from None
