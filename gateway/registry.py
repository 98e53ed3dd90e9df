"""The deployment registry: every model group and its upstream deployments, as one immutable snapshot.

Deployments come from the config's model_list (secrets already interpolated) and from active
ModelDeployment rows with source "db" (added at run time by operators). The snapshot is rebuilt
when the `deployments version` counter in Redis moves (checked at most every second by
gateway.auth's poller) or, in embedded mode, when deployments_changed() is called in-process.
The request path only reads the current snapshot: no database query per request.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from accounts.keys import secret_decrypt
from accounts.policy import allowed_env_references
from gateway.deployments import config_deployment_id
from gateway.models import ModelDeployment
from gateway.routing import wildcards
from gateway.versions import bump_version
from llmur.core.db import db_call
from llmur.core.lifespan import on_startup

logger = logging.getLogger("llmur.gateway.registry")

DEFAULT_TIMEOUT = 600.0
VERSION_KEY = "llmur:deployments_version"
PROVIDERS = ("openai", "azure", "anthropic", "ollama")
# Params the pipeline reads itself; everything else in litellm_params is passed to the provider as-is.
_KNOWN_PARAMS = {"model", "api_base", "api_key", "api_version", "timeout", "stream_timeout", "max_retries",
                 "rpm", "tpm", "weight"}


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream deployment of a model group, ready to call."""

    id: str
    model_name: str
    provider: str                 # openai | azure | anthropic | ollama
    model: str                    # the upstream model (or Azure deployment) name, provider prefix removed
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_version: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    stream_timeout: float = DEFAULT_TIMEOUT
    max_retries: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    weight: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    source: str = "config"
    # The entry's litellm_params in LiteLLM's shape, without secrets (pricing and limits read it).
    litellm_params: dict[str, Any] = field(default_factory=dict)
    # The wildcard model_name ("anthropic/*") this deployment was made concrete from, or "".
    wildcard: str = ""


@dataclass(frozen=True, slots=True)
class Registry:
    groups: dict[str, tuple[Deployment, ...]]
    loaded_at: float = 0.0
    patterns: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", wildcards.ordered_patterns(self.groups))

    def group(self, model_name: str) -> tuple[Deployment, ...]:
        """The exact model group, else the one a wildcard model_name makes for this name (gateway.routing.wildcards)."""
        found = self.groups.get(model_name)
        if found is not None:
            return found
        return wildcards.resolve(self.groups, self.patterns, model_name) if self.patterns else ()

    @property
    def model_names(self) -> list[str]:
        return sorted(self.groups)


def _split_model(model: str) -> tuple[str, str]:
    """`anthropic/claude-3-5-sonnet` → (anthropic, claude-3-5-sonnet); a bare name is OpenAI-compatible."""
    if "/" in model:
        prefix, rest = model.split("/", 1)
        if prefix.lower() in PROVIDERS:
            return prefix.lower(), rest
        # Other prefixes (hosted_vllm/, openai-compatible servers) speak the OpenAI API through api_base.
        return "openai", rest if prefix.lower() in ("hosted_vllm", "lm_studio", "llamacpp", "custom_openai") else model
    return "openai", model


def _default_timeouts() -> float:
    config = settings.LLMUR.config
    return float(config.router_settings.timeout or config.litellm_settings.get("request_timeout") or DEFAULT_TIMEOUT)


def deployment_from_params(*, deployment_id: str, model_name: str, params: dict[str, Any],
                           model_info: dict[str, Any], source: str) -> Deployment:
    """Build a Deployment from LiteLLM-shaped litellm_params (secrets already resolved)."""
    provider, upstream = _split_model(str(params["model"]))
    default = _default_timeouts()
    timeout = float(params.get("timeout") or default)
    return Deployment(
        id=deployment_id, model_name=model_name, provider=provider, model=upstream,
        api_base=params.get("api_base") or None, api_key=params.get("api_key") or None,
        api_version=params.get("api_version") or None, timeout=timeout,
        stream_timeout=float(params.get("stream_timeout") or timeout),
        max_retries=params.get("max_retries"), rpm=params.get("rpm"), tpm=params.get("tpm"),
        weight=params.get("weight"), extra={k: v for k, v in params.items() if k not in _KNOWN_PARAMS},
        model_info=dict(model_info or {}), source=source,
        litellm_params={k: v for k, v in params.items() if k != "api_key"},
    )


def _db_secret(value: Any, deployment_id: str) -> str | None:
    """Resolve a stored provider secret: `os.environ/NAME` or {"encrypted": TOKEN}; never plaintext."""
    if value is None or value == "":
        return None
    if isinstance(value, dict) and "encrypted" in value:
        return secret_decrypt(str(value["encrypted"]))
    if isinstance(value, str) and value.startswith("os.environ/"):
        name = value[len("os.environ/"):]
        if name not in allowed_env_references():
            # Also for rows stored before the rule (issue 16.7): only variables the operator listed.
            logger.error("deployment %s: os.environ/%s is not in general_settings.allowed_env_references; "
                         "its api_key is ignored", deployment_id, name)
            return None
        resolved = os.environ.get(name)
        if resolved is None:
            logger.warning("deployment %s: environment variable %s is not set", deployment_id, name)
        return resolved
    logger.warning("deployment %s: api_key is neither encrypted nor an os.environ/ reference; ignored", deployment_id)
    return None


def load() -> Registry:
    """Build a fresh snapshot (one query for the database-added deployments)."""
    groups: dict[str, list[Deployment]] = {}
    for index, entry in enumerate(settings.LLMUR.config.model_list):
        params = entry.litellm_params.model_dump(exclude_none=True)
        if entry.litellm_params.api_key is not None:
            params["api_key"] = entry.litellm_params.api_key.get_secret_value()
        deployment = deployment_from_params(deployment_id=config_deployment_id(entry, index),
                                            model_name=entry.model_name, params=params,
                                            model_info=entry.model_info, source="config")
        groups.setdefault(entry.model_name, []).append(deployment)
    rows = list(ModelDeployment.objects.filter(source=ModelDeployment.Source.DATABASE, is_active=True)
                .values_list("deployment_id", "model_name", "litellm_params", "model_info"))
    for deployment_id, model_name, params, model_info in rows:
        params = dict(params or {})
        if not params.get("model"):
            logger.warning("deployment %s has no litellm_params.model; skipped", deployment_id)
            continue
        try:
            params["api_key"] = _db_secret(params.get("api_key"), deployment_id)
        except ValueError as exc:
            logger.error("deployment %s skipped: %s", deployment_id, exc)
            continue
        groups.setdefault(model_name, []).append(deployment_from_params(
            deployment_id=deployment_id, model_name=model_name, params=params, model_info=model_info or {},
            source="db"))
    return Registry(groups={name: tuple(items) for name, items in groups.items()}, loaded_at=time.monotonic())


_current: Registry | None = None
_stale = True


RELOAD_RETRY_SECONDS = 5.0
_retry_at = 0.0


async def get() -> Registry:
    """The current snapshot, loading it first when it is missing or was marked stale.

    When a reload fails (database unreachable) the previous list keeps serving and the reload is
    retried after RELOAD_RETRY_SECONDS, so requests do not each wait on a dead database.
    """
    global _current, _stale, _retry_at
    if (_stale and time.monotonic() >= _retry_at) or _current is None:
        _stale = False
        try:
            _current = await db_call(load)
        except Exception:
            _stale, _retry_at = True, time.monotonic() + RELOAD_RETRY_SECONDS
            if _current is None:
                raise
            logger.exception("reloading deployments failed; serving the previous list")
    return _current


def mark_stale() -> None:
    global _stale, _retry_at
    _stale, _retry_at = True, 0.0


def deployments_changed() -> None:
    """Tell every worker that database deployments changed (call after the write commits).

    With Redis, bumps the shared version every process polls; embedded, reloads this process.
    """
    mark_stale()
    if settings.LLMUR.cache.engine == "redis":
        bump_version(VERSION_KEY)


@on_startup
async def preload_deployments() -> None:
    """Load the deployment list before the first request, so no request pays for it."""
    await get()
