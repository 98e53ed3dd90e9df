"""Model aliases: a requested model name mapped to a model group, before authorization.

Three sources, most specific first: the key's `aliases`, its team's `aliases` (both carried in the
cached Principal, merged by gateway.auth), then the config's global maps in LiteLLM's names,
`litellm_settings.model_alias_map` and `router_settings.model_group_alias` (whose entries may be
`{model: group, hidden: true}` to resolve without being listed; only these are listed by /v1/models). Resolution is one dictionary
lookup per source on data already in memory: no I/O on the request path. Allow-lists are checked
against what the alias resolves to, so an alias never widens what a key may use.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable

from django.conf import settings


@lru_cache(maxsize=1)
def global_aliases() -> tuple[dict[str, str], frozenset[str]]:
    """The config's alias → group map, and the aliases hidden from /v1/models."""
    config = settings.LLMUR.config
    table: dict[str, str] = {}
    hidden: set[str] = set()
    # model_group_alias first, so LiteLLM's litellm_settings.model_alias_map wins where both name one.
    sources: Iterable[dict[str, Any]] = (config.router_settings.model_group_alias or {},
                                         config.litellm_settings.get("model_alias_map") or {})
    for source in sources:
        for name, target in source.items():
            if isinstance(target, dict):
                if target.get("hidden"):
                    hidden.add(str(name))
                target = target.get("model")
            if isinstance(target, str) and target:
                table[str(name)] = target
    return table, frozenset(hidden)


def resolve(principal: Any, requested: str) -> str:
    """The model group a requested name stands for (the name itself when it is no alias)."""
    own = principal.aliases if principal is not None else None
    if own:
        target = own.get(requested)
        if target is not None:
            return target
    return global_aliases()[0].get(requested, requested)


def visible_aliases(usable_groups: Iterable[str]) -> list[str]:
    """The config's aliases a caller may call: those whose model group it may use, hidden ones left out.

    A key's or team's own `aliases` resolve but are not listed, as in LiteLLM, whose /v1/models
    shows `model_group_alias` entries and not key aliases: a key allowed `[gpt-3.5-turbo]` with
    `aliases: {mistral-7b: gpt-3.5-turbo}` lists one model, not two.
    """
    usable = set(usable_groups)
    table, hidden = global_aliases()
    return sorted(name for name, target in table.items()
                  if name not in hidden and target in usable and name not in usable)
