"""The configuration's shape: every key, its type, default and bounds, as pydantic models.

Field names follow the LLMUR YAML format; model_list, router_settings, litellm_settings and
general_settings keep LiteLLM's shape so existing config.yaml files load.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from llmur.config.sso import SsoConfiguration
from llmur.config.urls import engine_from_url

LOG_LEVELS = {
    "trace": "DEBUG", "debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
    "error": "ERROR", "critical": "CRITICAL", "fatal": "CRITICAL", "notset": "NOTSET",
}


def networks(value: list[str]) -> list[str]:
    """A list of IP addresses or CIDR networks, each checked (e.g. 10.0.0.0/8, 127.0.0.1)."""
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network (expected e.g. 10.0.0.0/8)") from None
    return value


class _Section(BaseModel):
    # Unknown keys are collected and reported as warnings by warn_unknown_keys, not failures.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class OtelConfiguration(_Section):
    exporter_otlp_endpoint: str | None = None
    service_name: str = "llmur"


class MetricsConfiguration(_Section):
    """GET /metrics (llmur/metrics.py): served to the master key, or without it to these client addresses."""

    enabled: bool = True
    allowed_ips: list[str] = Field(default_factory=list, description="addresses or CIDR networks")

    @field_validator("allowed_ips")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return networks(value)


class DatabaseConfiguration(_Section):
    engine: Literal["sqlite", "postgres", "mysql"] = "sqlite"
    url: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    min_connections: int = Field(default=2, ge=0, le=1000)
    max_connections: int = Field(default=10, ge=1, le=1000)
    pool_timeout: float = Field(default=30, gt=0)
    conn_max_lifetime: int = Field(default=0, ge=0, description="seconds; MySQL/SQLite persistent connections")
    ssl_mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    path: str | None = None
    echo: bool = False
    # Read replicas (llmur/db_router.py): URLs or blocks of this shape, for admin pages and spend reports.
    replicas: list["SecretStr | DatabaseConfiguration"] = Field(default_factory=list)

    @model_validator(mode="after")
    def _replicas_are_leaves(self) -> "DatabaseConfiguration":
        if any(isinstance(r, DatabaseConfiguration) and r.replicas for r in self.replicas):
            raise ValueError("a replica has no replicas of its own (expected replicas only under "
                             "database_configuration)")
        return self

    @model_validator(mode="after")
    def _engine_follows_url(self) -> "DatabaseConfiguration":
        # A URL decides the engine (DATABASE_URL overrides the file's engine too), so what
        # check_config prints is what runs.
        if self.url is not None:
            self.engine = engine_from_url(self.url.get_secret_value()) or self.engine  # type: ignore[assignment]
        return self


class SentinelAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = Field(min_length=1)
    port: int = Field(default=26379, ge=1, le=65535)


class CacheConfiguration(_Section):
    engine: Literal["redis", "local"] = "local"
    url: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=6379, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    db: int = Field(default=0, ge=0, le=15)
    ssl: bool = False
    # Redis Sentinel (llmur/redis_clients.py): the master of service_name, as the sentinels report it.
    # username/password/db/ssl above apply to the master; sentinel_password to the sentinels.
    sentinels: list[SentinelAddress] = Field(default_factory=list)
    service_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: SecretStr | None = None

    @model_validator(mode="after")
    def _engine_follows_url(self) -> "CacheConfiguration":
        if (self.url is not None or self.sentinels) and "engine" not in self.model_fields_set:
            self.engine = "redis"
        return self

    @model_validator(mode="after")
    def _sentinel_complete(self) -> "CacheConfiguration":
        if self.sentinels and not self.service_name:
            raise ValueError("sentinels need service_name (expected the master's name in the sentinels' "
                             "configuration, e.g. mymaster)")
        if self.sentinels and self.url is not None:
            raise ValueError("set either url or sentinels, not both (expected sentinels with service_name "
                             "for Redis Sentinel)")
        return self


class LegacyDatabaseBlock(_Section):
    """The `database:` block of LLM Interactive Proxy and similar SQLAlchemy-based proxies."""

    url: SecretStr | None = None
    pool_size: int | None = Field(default=None, ge=1, le=1000)
    max_overflow: int | None = Field(default=None, ge=0, le=1000)
    pool_timeout: float | None = Field(default=None, gt=0)
    echo: bool | None = None
    auto_migrate: bool | None = None


class LitellmParams(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str
    api_base: str | None = None
    api_key: SecretStr | None = None
    api_version: str | None = None
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0, le=20)
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    weight: float | None = Field(default=None, ge=0)

    @field_validator("model")
    @classmethod
    def _provider_prefixed(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty (expected provider/name, e.g. openai/gpt-4o)")
        return value


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())
    model_name: str = Field(min_length=1)
    litellm_params: LitellmParams
    model_info: dict[str, Any] = Field(default_factory=dict)


class RouterSettings(BaseModel):
    model_config = ConfigDict(extra="allow")
    routing_strategy: Literal[
        "simple-shuffle", "least-busy", "usage-based-routing", "usage-based-routing-v2",
        "latency-based-routing", "cost-based-routing",
    ] = "simple-shuffle"
    num_retries: int = Field(default=2, ge=0, le=20)
    retry_after: float = Field(default=0, ge=0)
    allowed_fails: int = Field(default=3, ge=0)
    cooldown_time: float = Field(default=5, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    context_window_fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    content_policy_fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    model_group_alias: dict[str, Any] = Field(default_factory=dict)


class OidcTeamMapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: str = Field(min_length=1)
    role: Literal["admin", "user"] = "user"


class OidcConfiguration(_Section):
    """Optional OpenID Connect sign-in for the admin (mozilla-django-oidc); see accounts/oidc.py."""

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    # The provider's issuer identifier: every id_token's `iss` must equal it, and its `aud` must
    # name client_id (OpenID Connect Core 3.1.3.7); accounts/oidc.py checks both.
    issuer: str = Field(min_length=1)
    authorization_endpoint: str = Field(min_length=1)
    token_endpoint: str = Field(min_length=1)
    userinfo_endpoint: str = Field(min_length=1)
    jwks_endpoint: str | None = None
    sign_algo: Literal["RS256", "RS384", "RS512", "ES256", "HS256"] = "RS256"
    scopes: str = "openid email profile"
    groups_claim: str = "groups"
    # Provider group → llmur role; a user in several groups gets the highest role.
    roles: dict[str, Literal["proxy_admin", "org_admin", "team_admin", "internal_user",
                             "internal_user_viewer"]] = Field(default_factory=dict)
    # Provider group → team name (member) or {team, role}; teams named here are created on first sign-in.
    teams: dict[str, str | OidcTeamMapping] = Field(default_factory=dict)
    default_role: Literal["proxy_admin", "org_admin", "team_admin", "internal_user",
                          "internal_user_viewer"] = "internal_user"
    # Only people in at least one mapped group may sign in, unless this is true.
    allow_unmapped: bool = False


class HttpsConfiguration(_Section):
    """Browsers reach the admin over TLS (directly, or through a proxy that terminates it): secure
    cookies, HSTS and a redirect to https, as `manage.py check --deploy` expects."""

    enabled: bool = False
    hsts_seconds: int = Field(default=31_536_000, ge=0)
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False
    redirect: bool = True
    # Trust the proxy's X-Forwarded-Proto: https (only behind a proxy that sets it on every request).
    trust_forwarded_proto: bool = False


class AlertingConfiguration(_Section):
    """Budget alerts (billing/alerts.py): thresholds, and where alerts go (webhook, email)."""

    enabled: bool = True
    # Percentages of max_budget; soft_budget, when an entity has one, is a threshold of its own.
    thresholds: list[float] = Field(default_factory=lambda: [50.0, 80.0, 100.0])
    webhook_url: str | None = None
    # Signs each webhook body: X-Llmur-Signature: sha256=HMAC(secret, "<timestamp>.<body>").
    webhook_secret: SecretStr | None = None
    webhook_timeout: float = Field(default=10, gt=0, le=120)
    email_to: list[str] = Field(default_factory=list)
    email_from: str = "llmur@localhost"
    # Django's email settings; the default backend sends through SMTP.
    email_backend: str = "django.core.mail.backends.smtp.EmailBackend"
    email_host: str = "localhost"
    email_port: int = Field(default=25, ge=1, le=65535)
    email_host_user: str = ""
    email_host_password: SecretStr | None = None
    email_use_tls: bool = False
    email_file_path: str | None = None
    max_attempts: int = Field(default=5, ge=1, le=50)
    # First retry after this many seconds, doubling each time (capped at 30 minutes).
    retry_backoff_seconds: float = Field(default=30, ge=0, le=3600)

    @field_validator("thresholds")
    @classmethod
    def _percentages(cls, value: list[float]) -> list[float]:
        for item in value:
            if not 0 < item <= 1000:
                raise ValueError(f"{item:g} is not a percentage of max_budget (expected e.g. 50, 80, 100)")
        return sorted(set(value))

    @model_validator(mode="after")
    def _signed(self) -> "AlertingConfiguration":
        if self.webhook_url and (self.webhook_secret is None or not self.webhook_secret.get_secret_value()):
            raise ValueError("alerting.webhook_secret: required with alerting.webhook_url (expected a secret the "
                             "receiver checks X-Llmur-Signature with)")
        return self


class RequestLoggingConfiguration(_Section):
    """Opt-in prompt/answer log (gateway/request_log.py); switched on per key, project or team."""

    retention_days: int = Field(default=30, ge=1, le=3650)
    # Longer prompts and answers are cut to this many characters before storage.
    max_chars: int = Field(default=100_000, ge=1000, le=10_000_000)


class MemoryConfiguration(_Section):
    """Cross-session memory (docs/memory.md): the defaults; switched on here for every key, or per key,
    project or team (their `memory` field, whose keys are these)."""

    enabled: bool = False
    # The model group that writes the summaries, through llmur's own router; empty: the session's own model.
    summarizer_model: str = ""
    max_injected_tokens: int = Field(default=1000, ge=1, le=100_000)
    idle_minutes: int = Field(default=30, ge=1, le=10_080)
    retention_days: int = Field(default=30, ge=1, le=3650)


class LlmurConfig(_Section):
    """The validated configuration; field names follow the LLMUR YAML format."""

    application_secret: SecretStr | None = None
    log_level: str = "info"
    # The time zone the admin shows dates in (an IANA name, e.g. Europe/Berlin); stored times stay UTC.
    time_zone: str = "UTC"
    log_format: Literal["text", "json"] = "text"
    # One line per gateway request (llmur/accesslog.py); prompts appear in it only with log_prompts.
    access_log: bool = True
    log_prompts: bool = False
    host: str = "0.0.0.0"
    port: int = Field(default=8082, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    master_keys: list[SecretStr] = Field(default_factory=list)
    auto_migrate: bool = True
    debug: bool = False
    allowed_hosts: list[str] = Field(default_factory=lambda: ["*"])
    # Proxies (addresses or CIDR networks, e.g. the ingress's range) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed; from any other peer the headers are ignored. Empty: none.
    trusted_proxies: list[str] = Field(default_factory=list)
    max_request_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    cache_failure_policy: Literal["fail_open", "fail_closed"] = "fail_open"
    https: HttpsConfiguration = Field(default_factory=HttpsConfiguration)
    otel: OtelConfiguration = Field(default_factory=OtelConfiguration)
    metrics: MetricsConfiguration = Field(default_factory=MetricsConfiguration)
    database_configuration: DatabaseConfiguration = Field(default_factory=DatabaseConfiguration)
    cache_configuration: CacheConfiguration = Field(default_factory=CacheConfiguration)
    database: LegacyDatabaseBlock | None = None
    # LiteLLM's shape, so existing config.yaml files load.
    model_list: list[ModelEntry] = Field(default_factory=list)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    litellm_settings: dict[str, Any] = Field(default_factory=dict)
    general_settings: dict[str, Any] = Field(default_factory=dict)
    oidc: OidcConfiguration | None = None
    alerting: AlertingConfiguration = Field(default_factory=AlertingConfiguration)
    request_logging: RequestLoggingConfiguration = Field(default_factory=RequestLoggingConfiguration)
    memory: MemoryConfiguration = Field(default_factory=MemoryConfiguration)
    # Agent sign-in (RFC 8628 device flow), off by default: llmur/config/sso.py.
    sso: SsoConfiguration = Field(default_factory=SsoConfiguration)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: list[str]) -> list[str]:
        # Normalized (10.1.2.3/8 -> 10.0.0.0/8): gunicorn's forwarded_allow_ips accepts only that form.
        return [str(ipaddress.ip_network(item, strict=False)) for item in networks(value)]

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone (expected an IANA name such as UTC or Europe/Berlin)") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"unknown level (expected one of {', '.join(sorted(LOG_LEVELS))})")
        return value.lower()

    @model_validator(mode="after")
    def _alias_maps(self) -> "LlmurConfig":
        # Checked here so a bad alias is one line at start-up, not a surprise on the first request.
        for where, table in (("litellm_settings.model_alias_map", self.litellm_settings.get("model_alias_map")),
                             ("router_settings.model_group_alias", self.router_settings.model_group_alias)):
            if table is None:
                continue
            if not isinstance(table, dict):
                raise ValueError(f"{where}: not a mapping (expected alias: model group lines)")
            for name, target in table.items():
                if isinstance(target, dict):
                    target = target.get("model")
                if not isinstance(target, str) or not target.strip():
                    raise ValueError(f"{where}.{name}: not a model group name (expected alias: model group, "
                                     f"or alias: {{model: group, hidden: true}})")
        return self

    @model_validator(mode="after")
    def _env_references(self) -> "LlmurConfig":
        names = self.general_settings.get("allowed_env_references")
        if names is not None and not (isinstance(names, list) and all(
                isinstance(n, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names)):
            raise ValueError("general_settings.allowed_env_references: not a list of environment variable names "
                             "(expected e.g. [AZURE_API_KEY, OPENAI_API_KEY])")
        return self

    @property
    def allowed_env_references(self) -> tuple[str, ...]:
        """Variables a deployment added at run time may name as os.environ/NAME (docs/security.md); none by default."""
        return tuple(self.general_settings.get("allowed_env_references") or ())

    @property
    def python_log_level(self) -> str:
        return LOG_LEVELS[self.log_level]
