"""Other proxies' config shapes read as llmur's: LiteLLM's general_settings and unsupported keys, and the
SQLAlchemy-style `database:` block of LLM Interactive Proxy."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from llmur.config.errors import join_key
from llmur.config.schema import LlmurConfig, RouterSettings


def fold_foreign_shapes(raw: dict[str, Any]) -> dict[str, Any]:
    """Map LiteLLM's general_settings and the SQLAlchemy-style `database:` block onto ours."""
    raw = dict(raw)
    general = raw.get("general_settings")
    if isinstance(general, dict):
        if general.get("master_key"):
            keys = list(raw.get("master_keys") or [])
            if general["master_key"] not in keys:
                keys.append(general["master_key"])
            raw["master_keys"] = keys
        # An explicit database_configuration wins over LiteLLM's database_url.
        if general.get("database_url") and not raw.get("database_configuration"):
            raw["database_configuration"] = {**(raw.get("database_configuration") or {}), "url": general["database_url"]}
    legacy = raw.get("database")
    if isinstance(legacy, dict):
        db = dict(raw.get("database_configuration") or {})
        if legacy.get("url") and not db:
            db["url"] = legacy["url"]
        pool, overflow = legacy.get("pool_size"), legacy.get("max_overflow")
        if isinstance(pool, int) and "max_connections" not in db:
            db["max_connections"] = pool + (overflow if isinstance(overflow, int) else 0)
            db.setdefault("min_connections", min(pool, 2))
        if legacy.get("pool_timeout") is not None:
            db.setdefault("pool_timeout", legacy["pool_timeout"])
        if legacy.get("echo") is not None:
            db.setdefault("echo", legacy["echo"])
        if legacy.get("auto_migrate") is not None:
            raw.setdefault("auto_migrate", legacy["auto_migrate"])
        raw["database_configuration"] = db
    return raw


# Keys of LiteLLM sections that llmur reads; everything else in them is reported once as unsupported.
_SUPPORTED_LITELLM_SETTINGS = {"cache", "cache_params", "model_alias_map", "num_retries", "request_timeout",
                               "fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
                               "drop_params", "set_verbose", "json_logs"}
_SUPPORTED_GENERAL_SETTINGS = {"master_key", "database_url", "allowed_env_references"}


def warn_unknown_keys(raw: dict[str, Any]) -> list[str]:
    warnings: list[str] = []

    def walk(model: type[BaseModel], data: Any, path: str) -> None:
        # Provider params (litellm_params, model_info) are open-ended and passed upstream as given;
        # router_settings keeps unknown keys readable but still tells the user they do nothing yet.
        if not isinstance(data, dict) or (model.model_config.get("extra") == "allow" and model is not RouterSettings):
            return
        known = {name: f for name, f in model.model_fields.items()}
        for key, value in data.items():
            if key not in known:
                warnings.append(f"{join_key(path, key)}: not supported by llmur yet, ignored")
                continue
            annotation = known[key].annotation
            for candidate in getattr(annotation, "__args__", (annotation,)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    walk(candidate, value, join_key(path, key))

    walk(LlmurConfig, raw, "")
    for section, supported in (("litellm_settings", _SUPPORTED_LITELLM_SETTINGS),
                               ("general_settings", _SUPPORTED_GENERAL_SETTINGS)):
        block = raw.get(section)
        if isinstance(block, dict):
            warnings.extend(f"{section}.{key}: not supported by llmur yet, ignored"
                            for key in block if key not in supported)
    return warnings
