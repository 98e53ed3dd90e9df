"""Wildcard model groups and wildcard allow-lists, as LiteLLM's model_list and key `models` write them.

A model_list entry whose model_name holds `*` ("*", "anthropic/*", "fo::*:static::*") answers every
requested name it matches that no exact group has. Its deployments are used with each `*` of their
litellm_params model replaced, in order, by what the requested name's `*` matched:
`anthropic/*` → `anthropic/*` serves "anthropic/claude-3-5-haiku" as anthropic/claude-3-5-haiku, and
`*` → `openai/*` serves "gpt-4o" as openai/gpt-4o. When several patterns match, the most specific
(most literal characters, then fewest wildcards) wins, so "groq/*" beats "*".

An allow-list entry holding `*` (other than the bare "*", which means every model) allows the names it
matches: a user allowed ["anthropic/*"] may call "anthropic/claude-3-5-haiku".
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

WILDCARD = "*"


def is_pattern(name: str) -> bool:
    return WILDCARD in name


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("(.*)".join(re.escape(part) for part in pattern.split(WILDCARD)), re.DOTALL)


def match(pattern: str, name: str) -> tuple[str, ...] | None:
    """What each `*` of the pattern matched in name, or None when it does not match."""
    found = _regex(pattern).fullmatch(name)
    return found.groups() if found else None


def specificity(pattern: str) -> tuple[int, int]:
    """Sort key: the most specific pattern first."""
    return (-(len(pattern) - pattern.count(WILDCARD)), pattern.count(WILDCARD))


def ordered_patterns(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted((name for name in names if is_pattern(name)), key=lambda p: (specificity(p), p)))


def _fill(template: str, parts: tuple[str, ...]) -> str:
    """Each `*` of template replaced by the next matched part (extra stars by the last one)."""
    if WILDCARD not in template or not parts:
        return template
    pieces = template.split(WILDCARD)
    out = [pieces[0]]
    for index, piece in enumerate(pieces[1:]):
        out.append(parts[min(index, len(parts) - 1)])
        out.append(piece)
    return "".join(out)


def expand(deployments: tuple[Any, ...], pattern: str, requested: str) -> tuple[Any, ...]:
    """The pattern group's deployments, made concrete for the requested name."""
    parts = match(pattern, requested) or ()
    concrete = []
    for dep in deployments:
        params = dict(dep.litellm_params)
        if isinstance(params.get("model"), str):
            params["model"] = _fill(params["model"], parts)
        concrete.append(dataclasses.replace(dep, model=_fill(dep.model, parts), model_name=requested,
                                            litellm_params=params, wildcard=pattern))
    return tuple(concrete)


def resolve(groups: dict[str, tuple[Any, ...]], patterns: tuple[str, ...], requested: str) -> tuple[Any, ...]:
    """The deployments that serve `requested` through the most specific matching pattern, or ()."""
    for pattern in patterns:
        if match(pattern, requested) is not None:
            return expand(groups[pattern], pattern, requested)
    return ()


class ModelAllowList(frozenset):
    """An allow-list (the intersection of a key's and its owners' lists) that understands patterns.

    The set holds every name of every list; membership asks each list in turn: a model is allowed
    when each list names it or has a pattern matching it.
    """

    lists: tuple[frozenset[str], ...]

    def __new__(cls, lists: Iterable[Iterable[str]]):
        frozen = tuple(frozenset(models) for models in lists)
        self = super().__new__(cls, frozenset().union(*frozen) if frozen else frozenset())
        self.lists = frozen
        return self

    def __contains__(self, model: object) -> bool:
        if not isinstance(model, str):
            return False
        return all(model in names or any(is_pattern(n) and match(n, model) is not None for n in names)
                   for names in self.lists)

    def __reduce__(self):
        return (ModelAllowList, (self.lists,))


def allow_list(lists: Iterable[Iterable[str]]) -> frozenset[str]:
    """A plain frozenset for lists without patterns (the intersection), else a ModelAllowList."""
    lists = [frozenset(models) for models in lists]
    if any(is_pattern(name) for models in lists for name in models):
        return ModelAllowList(lists)
    result = lists[0]
    for models in lists[1:]:
        result = result & models
    return result
