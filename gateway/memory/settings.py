"""A key's memory settings: its team's, project's and own `memory` blocks, merged in that order over the config's."""
from __future__ import annotations

from typing import Any

from django.conf import settings

from gateway.context import MemorySettings

FIELDS = {"summarizer_model": str, "max_injected_tokens": int, "idle_minutes": int, "retention_days": int}


def memory_settings(key: Any, project: Any, team: Any) -> MemorySettings | None:
    """The key's MemorySettings, or None when memory is off for it."""
    config = settings.LLMUR.config.memory
    values: dict[str, Any] = {"enabled": config.enabled, **{name: getattr(config, name) for name in FIELDS}}
    for owner in (team, project, key):
        block = getattr(owner, "memory", None) if owner is not None else None
        if not isinstance(block, dict):
            continue   # unset, or not a mapping (the admin stores whatever JSON it was given)
        for name, value in block.items():
            if name == "enabled" and isinstance(value, bool):
                values[name] = value
            elif name in FIELDS and isinstance(value, FIELDS[name]) and not isinstance(value, bool):
                values[name] = value if FIELDS[name] is str else max(1, value)
    if not values.pop("enabled"):
        return None
    scope = (f"project:{project.pk}" if project is not None else f"team:{team.pk}" if team is not None
             else f"key:{key.pk}")
    return MemorySettings(scope=scope, **values)
