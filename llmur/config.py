"""Load, interpolate and validate llmur's one YAML configuration file.

Everything that reads configuration goes through :func:`load_config`; settings.py turns the
result into Django settings in one place. Every problem is reported as a :class:`ConfigError`
whose text is one line naming the file and the key, never echoing a secret's value.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

logger = logging.getLogger("llmur.config")

ENV_CONFIG_PATH = "LLMUR_CONFIGURATION"
# Set by `llmur-proxy --database-url`, so errors name the flag rather than DATABASE_URL.
_CLI_DATABASE_URL = "LLMUR_DATABASE_URL_FROM_CLI"
BASE_DIR = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A configuration problem, already phrased as the one line the user will read."""

    exit_code = 2

    def __init__(self, source: str, key: str, problem: str):
        self.source, self.key, self.problem = source, key, problem
        where = f"{key}: " if key else ""
        super().__init__(f"llmur: config error in {source}: {where}{problem}")


# --------------------------------------------------------------------------- schema

LOG_LEVELS = {
    "trace": "DEBUG", "debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING",
    "error": "ERROR", "critical": "CRITICAL", "fatal": "CRITICAL", "notset": "NOTSET",
}


class _Section(BaseModel):
    # Unknown keys are collected and reported as warnings by _warn_unknown_keys, not failures.
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
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
        return value


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
            self.engine = _engine_from_url(self.url.get_secret_value()) or self.engine  # type: ignore[assignment]
        return self


def _engine_from_url(url: str) -> str | None:
    if _GO_MYSQL_DSN.match(url):
        return "mysql"
    return _SCHEMES.get(urlsplit(url).scheme.split("+", 1)[0].lower())


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


class LlmurConfig(_Section):
    """The validated configuration; field names follow the LLMUR YAML format."""

    application_secret: SecretStr | None = None
    log_level: str = "info"
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

    @property
    def python_log_level(self) -> str:
        return LOG_LEVELS[self.log_level]


# --------------------------------------------------------------------------- resolved result

@dataclass
class ResolvedDatabase:
    """What settings.py needs to build DATABASES; secrets stay inside, never printed."""

    engine: str
    name: str
    host: str = ""
    port: int | None = None
    user: str = ""
    password: str = field(default="", repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    min_connections: int = 2
    max_connections: int = 10
    pool_timeout: float = 30
    conn_max_lifetime: int = 0
    echo: bool = False
    replicas: list["ResolvedDatabase"] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.name if self.engine == "sqlite" else f"{self.host}:{self.port}"


@dataclass
class ResolvedCache:
    """url: the Redis URL; under Sentinel, redis://[user:password@]SERVICE_NAME/DB, the master's name and
    credentials (llmur/redis_clients.py asks the sentinels where it is)."""

    engine: str
    url: str = field(default="", repr=False)
    sentinels: list[tuple[str, int]] = field(default_factory=list)
    service_name: str = ""
    sentinel_username: str = ""
    sentinel_password: str = field(default="", repr=False)

    @property
    def address(self) -> str:
        if self.engine != "redis":
            return "local memory"
        if self.sentinels:
            return f"master {self.service_name} via sentinels " + ",".join(f"{h}:{p}" for h, p in self.sentinels)
        parts = urlsplit(self.url)
        return f"{parts.hostname}:{parts.port or 6379}"


@dataclass
class Settings:
    """The loaded configuration plus everything derived from it."""

    source: str
    config: LlmurConfig
    database: ResolvedDatabase
    cache: ResolvedCache
    application_secret: str = field(repr=False)
    master_keys: list[str] = field(repr=False)
    var_dir: Path
    warnings: list[str]
    embedded: bool


# --------------------------------------------------------------------------- interpolation

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _interpolate(value: Any, env: dict[str, str], source: str, path: str = "") -> Any:
    """Replace ${VAR}, ${VAR:-default} and os.environ/VAR references, recursively."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env, source, _join(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, source, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    if value.startswith("os.environ/"):
        name = value[len("os.environ/"):]
        if name not in env:
            raise ConfigError(source, path, f"environment variable {name} is not set (expected it set, as os.environ/{name} refers to it)")
        return env[name]

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] != "" or default is None):
            return env[name]
        if default is not None:
            return default
        raise ConfigError(source, path, f"environment variable {name} is not set (expected it set, or a default: ${{{name}:-default}})")

    return _ENV_REF.sub(replace, value)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


# --------------------------------------------------------------------------- environment overrides

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_bool(env: dict[str, str], name: str) -> bool:
    raw = env[name].strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError("environment", name, "not a boolean (expected true or false)")


def _env_int(env: dict[str, str], name: str, low: int = 0, high: int = 10**9) -> int:
    try:
        value = int(env[name].strip())
    except ValueError:
        raise ConfigError("environment", name, f"not an integer (expected a whole number {low}..{high})") from None
    if not low <= value <= high:
        raise ConfigError("environment", name, f"out of range (expected {low}..{high})")
    return value


def _env_duration(env: dict[str, str], name: str) -> int:
    """CONN_MAX_LIFETIME in Go's style (30m, 1h, 90s) or plain seconds."""
    raw = env[name].strip().lower()
    match = re.fullmatch(r"(\d+)(s|m|h)?", raw)
    if not match:
        raise ConfigError("environment", name, "not a duration (expected seconds, or e.g. 30m, 1h)")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def _apply_env_overrides(raw: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply the environment over the file; also return which variable set which key.

    The second value maps a dotted key to the variable that set it, so an invalid value is
    reported against the variable the user actually typed, not against the file.
    """
    raw = dict(raw)
    origins: dict[str, str] = {}
    db = dict(raw.get("database_configuration") or {})
    cache = dict(raw.get("cache_configuration") or {})
    for name, key in (("LLMUR_LOG_LEVEL", "log_level"), ("LLMUR_HOST", "host"),
                      ("LLMUR_APPLICATION_SECRET", "application_secret")):
        if env.get(name):
            raw[key] = env[name]
            origins[key] = name
    if env.get("LLMUR_PORT"):
        raw["port"] = _env_int(env, "LLMUR_PORT", 1, 65535)
    for name in ("LLMUR_MASTER_KEY", "LITELLM_MASTER_KEY"):
        if env.get(name):
            keys = list(raw.get("master_keys") or [])
            if env[name] not in keys:
                keys.append(env[name])
            raw["master_keys"] = keys
    if env.get("DB_DRIVER"):
        driver = env["DB_DRIVER"].strip().lower()
        engine = {"postgresql": "postgres", "mariadb": "mysql"}.get(driver, driver)
        if engine not in ("sqlite", "postgres", "mysql"):
            raise ConfigError("environment", "DB_DRIVER", "unknown driver (expected sqlite, postgres or mysql)")
        db["engine"] = engine
    if env.get("DATABASE_URL"):
        db["url"] = env["DATABASE_URL"]
        origins["database_configuration.url"] = (
            "--database-url" if env.get(_CLI_DATABASE_URL) else "DATABASE_URL")
    if env.get("DATABASE_PATH"):
        db["path"] = env["DATABASE_PATH"]
        origins["database_configuration.path"] = "DATABASE_PATH"
    for name in ("DATABASE_POOL_SIZE", "POOL_SIZE"):
        if env.get(name):
            db["max_connections"] = _env_int(env, name, 1, 1000)
    if env.get("DATABASE_MAX_OVERFLOW"):
        db["max_connections"] = db.get("max_connections", 10) + _env_int(env, "DATABASE_MAX_OVERFLOW", 0, 1000)
    if env.get("DATABASE_POOL_TIMEOUT"):
        db["pool_timeout"] = _env_int(env, "DATABASE_POOL_TIMEOUT", 1, 3600)
    if env.get("DATABASE_ECHO"):
        db["echo"] = _env_bool(env, "DATABASE_ECHO")
    for name in ("CONN_MAX_LIFETIME", "DATABASE_CONN_MAX_LIFETIME"):
        if env.get(name):
            db["conn_max_lifetime"] = _env_duration(env, name)
    if env.get("DATABASE_AUTO_MIGRATE"):
        raw["auto_migrate"] = _env_bool(env, "DATABASE_AUTO_MIGRATE")
    if env.get("REDIS_URL"):
        cache = {"engine": "redis", "url": env["REDIS_URL"]}
        origins["cache_configuration.url"] = "REDIS_URL"
    if db:
        raw["database_configuration"] = db
    if cache:
        raw["cache_configuration"] = cache
    return raw, origins


def _fold_foreign_shapes(raw: dict[str, Any]) -> dict[str, Any]:
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


# --------------------------------------------------------------------------- unknown keys

# Keys of LiteLLM sections that llmur reads; everything else in them is reported once as unsupported.
_SUPPORTED_LITELLM_SETTINGS = {"cache", "cache_params", "model_alias_map", "num_retries", "request_timeout",
                               "fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
                               "drop_params", "set_verbose", "json_logs"}
_SUPPORTED_GENERAL_SETTINGS = {"master_key", "database_url"}


def _warn_unknown_keys(raw: dict[str, Any]) -> list[str]:
    warnings: list[str] = []

    def walk(model: type[BaseModel], data: Any, path: str) -> None:
        # Provider params (litellm_params, model_info) are open-ended and passed upstream as given;
        # router_settings keeps unknown keys readable but still tells the user they do nothing yet.
        if not isinstance(data, dict) or (model.model_config.get("extra") == "allow" and model is not RouterSettings):
            return
        known = {name: f for name, f in model.model_fields.items()}
        for key, value in data.items():
            if key not in known:
                warnings.append(f"{_join(path, key)}: not supported by llmur yet, ignored")
                continue
            annotation = known[key].annotation
            for candidate in getattr(annotation, "__args__", (annotation,)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    walk(candidate, value, _join(path, key))

    walk(LlmurConfig, raw, "")
    for section, supported in (("litellm_settings", _SUPPORTED_LITELLM_SETTINGS),
                               ("general_settings", _SUPPORTED_GENERAL_SETTINGS)):
        block = raw.get(section)
        if isinstance(block, dict):
            warnings.extend(f"{section}.{key}: not supported by llmur yet, ignored"
                            for key in block if key not in supported)
    return warnings


# --------------------------------------------------------------------------- database URLs

_SCHEMES = {
    "postgres": "postgres", "postgresql": "postgres", "pgsql": "postgres",
    "mysql": "mysql", "mariadb": "mysql",
    "sqlite": "sqlite", "sqlite3": "sqlite",
}
_GO_MYSQL_DSN = re.compile(r"^(?:(?P<user>[^:@/]*)(?::(?P<password>[^@]*))?@)?tcp\((?P<host>[^:)]+)(?::(?P<port>\d+))?\)/(?P<db>[^?]*)(?:\?(?P<query>.*))?$")


def parse_database_url(url: str, source: str, key: str, var_dir: Path) -> ResolvedDatabase:
    """Normalize Django-, SQLAlchemy- and Go-style database URLs to one ResolvedDatabase."""
    go = _GO_MYSQL_DSN.match(url)
    if go:
        query = dict(parse_qsl(go.group("query") or ""))
        options = _mysql_tls(query.get("tls"))
        return ResolvedDatabase(engine="mysql", name=go.group("db"), host=go.group("host"),
                                port=int(go.group("port") or 3306), user=unquote(go.group("user") or ""),
                                password=unquote(go.group("password") or ""), options=options)
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0].lower()
    engine = _SCHEMES.get(scheme)
    if engine is None:
        raise ConfigError(source, key, f"unknown database URL scheme {scheme!r} (expected postgresql://, mysql:// or sqlite:///)")
    query = dict(parse_qsl(parts.query))
    if engine == "sqlite":
        # sqlite:///relative/path, sqlite:////absolute/path, sqlite+aiosqlite:///./var/db/proxy.db
        raw_path = url.split("://", 1)[1]
        raw_path = raw_path[1:] if raw_path.startswith("/") else raw_path
        raw_path = raw_path.split("?", 1)[0]
        if raw_path in ("", ":memory:"):
            return ResolvedDatabase(engine="sqlite", name=":memory:")
        return ResolvedDatabase(engine="sqlite", name=str(Path(raw_path).expanduser()))
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(source, key, "bad port in the database URL (expected a number 1..65535)") from None
    if not parts.path.strip("/"):
        raise ConfigError(source, key, "database URL names no database (expected …/DATABASE_NAME)")
    resolved = ResolvedDatabase(
        engine=engine, name=unquote(parts.path.lstrip("/")), host=parts.hostname or query.get("host", ""),
        port=port or (5432 if engine == "postgres" else 3306),
        user=unquote(parts.username or ""), password=unquote(parts.password or ""),
    )
    if engine == "postgres":
        sslmode = query.get("sslmode") or {"require": "require", "true": "require", "disable": "disable"}.get(query.get("ssl", ""))
        resolved.options = _pg_tls(sslmode, query.get("sslrootcert"), query.get("sslcert"), query.get("sslkey"))
        if query.get("connect_timeout"):
            resolved.options["connect_timeout"] = int(query["connect_timeout"])
    else:
        resolved.options = _mysql_tls(query.get("tls") or query.get("ssl") or query.get("ssl_mode"),
                                      query.get("ssl_ca"), query.get("ssl_cert"), query.get("ssl_key"))
    return resolved


def _pg_tls(mode: str | None, ca: str | None = None, cert: str | None = None, key: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if mode:
        options["sslmode"] = mode
    for name, value in (("sslrootcert", ca), ("sslcert", cert), ("sslkey", key)):
        if value:
            options[name] = value
    return options


def _mysql_tls(mode: str | None, ca: str | None = None, cert: str | None = None, key: str | None = None) -> dict[str, Any]:
    mode = (mode or "").lower()
    if mode in ("", "false", "disable", "disabled") and not (ca or cert or key):
        return {}
    ssl: dict[str, Any] = {}
    if ca:
        ssl["ca"] = ca
    if cert:
        ssl["cert"] = cert
    if key:
        ssl["key"] = key
    options: dict[str, Any] = {"ssl": ssl} if ssl else {}
    # mysqlclient's ssl_mode names, from libpq-style (ssl_mode), Go-driver (tls=) and MySQL spellings.
    options["ssl_mode"] = {
        "allow": "PREFERRED", "prefer": "PREFERRED", "preferred": "PREFERRED",
        "require": "REQUIRED", "required": "REQUIRED", "skip-verify": "REQUIRED",
        "verify-ca": "VERIFY_CA", "verify_ca": "VERIFY_CA", "custom": "VERIFY_CA",
        "true": "VERIFY_IDENTITY", "verify-full": "VERIFY_IDENTITY", "verify_identity": "VERIFY_IDENTITY",
    }.get(mode, "VERIFY_CA" if ca else "REQUIRED")
    return options


def _resolve_database(cfg: DatabaseConfiguration, source: str, var_dir: Path) -> ResolvedDatabase:
    key = "database_configuration"
    if cfg.url is not None:
        resolved = parse_database_url(cfg.url.get_secret_value(), source, f"{key}.url", var_dir)
    elif cfg.engine == "sqlite":
        resolved = ResolvedDatabase(engine="sqlite", name=cfg.path or str(var_dir / "llmur.sqlite3"))
    else:
        if not cfg.database:
            raise ConfigError(source, f"{key}.database", f"required for engine {cfg.engine} (expected a database name)")
        resolved = ResolvedDatabase(
            engine=cfg.engine, name=cfg.database, host=cfg.host,
            port=cfg.port or (5432 if cfg.engine == "postgres" else 3306),
            user=cfg.username or "", password=cfg.password.get_secret_value() if cfg.password else "",
        )
    if resolved.engine == "postgres" and (cfg.ssl_mode or cfg.ssl_ca or cfg.ssl_cert):
        resolved.options.update(_pg_tls(cfg.ssl_mode, cfg.ssl_ca, cfg.ssl_cert, cfg.ssl_key))
    elif resolved.engine == "mysql" and (cfg.ssl_mode or cfg.ssl_ca):
        resolved.options.update(_mysql_tls(cfg.ssl_mode or "", cfg.ssl_ca, cfg.ssl_cert, cfg.ssl_key))
    if resolved.engine == "sqlite" and resolved.name != ":memory:" and not Path(resolved.name).is_absolute():
        resolved.name = str((Path.cwd() / resolved.name).resolve())
    if cfg.min_connections > cfg.max_connections:
        if "min_connections" in cfg.model_fields_set:
            raise ConfigError(source, f"{key}.min_connections",
                              f"greater than max_connections (expected at most {cfg.max_connections})")
        # Only the default minimum exceeds a small configured pool (e.g. POOL_SIZE=1): shrink it.
        cfg = cfg.model_copy(update={"min_connections": cfg.max_connections})
    resolved.min_connections, resolved.max_connections = cfg.min_connections, cfg.max_connections
    resolved.pool_timeout, resolved.conn_max_lifetime, resolved.echo = cfg.pool_timeout, cfg.conn_max_lifetime, cfg.echo
    for index, replica in enumerate(cfg.replicas):
        where = f"{key}.replicas[{index}]"
        if isinstance(replica, SecretStr):
            copy = parse_database_url(replica.get_secret_value(), source, where, var_dir)
        else:
            copy = _resolve_database(replica, source, var_dir)
        if copy.engine != resolved.engine:
            raise ConfigError(source, where, f"a {copy.engine} replica of a {resolved.engine} database "
                                             f"(expected a replica of the same engine)")
        resolved.replicas.append(copy)
    return resolved


def _resolve_cache(cfg: CacheConfiguration, source: str) -> ResolvedCache:
    if cfg.url is not None:
        url = cfg.url.get_secret_value()
        scheme = urlsplit(url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(source, "cache_configuration.url", f"unknown scheme {scheme!r} (expected redis:// or rediss://)")
        try:
            urlsplit(url).port
        except ValueError:
            raise ConfigError(source, "cache_configuration.url", "bad port in the URL (expected a number 1..65535)") from None
        return ResolvedCache(engine="redis", url=url)
    if cfg.engine == "local":
        return ResolvedCache(engine="local")
    auth = ""
    if cfg.password is not None:
        from urllib.parse import quote
        auth = f"{quote(cfg.username or '')}:{quote(cfg.password.get_secret_value())}@"
    scheme = "rediss" if cfg.ssl else "redis"
    if cfg.sentinels:
        return ResolvedCache(engine="redis", url=f"{scheme}://{auth}{cfg.service_name}/{cfg.db}",
                             sentinels=[(s.host, s.port) for s in cfg.sentinels], service_name=cfg.service_name or "",
                             sentinel_username=cfg.sentinel_username or "",
                             sentinel_password=cfg.sentinel_password.get_secret_value() if cfg.sentinel_password else "")
    return ResolvedCache(engine="redis", url=f"{scheme}://{auth}{cfg.host}:{cfg.port}/{cfg.db}")


# --------------------------------------------------------------------------- loading

def _read_yaml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found (expected a readable YAML file)") from None
    except IsADirectoryError:
        raise ConfigError(source, "", "is a directory (expected a YAML file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read file: {exc.__class__.__name__} (expected a readable UTF-8 YAML file)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        hint = "" if "expected" in problem else " (expected valid YAML)"
        raise ConfigError(source, "", f"YAML syntax error at {where}{problem}{hint}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", "top level must be a mapping of keys (expected key: value lines)")
    return data


def _field_at(loc: tuple[Any, ...]) -> Any:
    """The pydantic FieldInfo that an error location points at, to phrase its bounds."""
    model: Any = LlmurConfig
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in getattr(model, "model_fields", {}):
            return None
        info = model.model_fields[part]
        model = _model_in(info.annotation)
    return info


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _bounds(loc: tuple[Any, ...]) -> str:
    info = _field_at(loc)
    low = high = None
    for item in getattr(info, "metadata", []):
        for attr in ("ge", "gt"):
            if getattr(item, attr, None) is not None:
                low = (attr, getattr(item, attr))
        for attr in ("le", "lt"):
            if getattr(item, attr, None) is not None:
                high = (attr, getattr(item, attr))
    if low and high and low[0] == "ge" and high[0] == "le":
        return f"expected {low[1]}..{high[1]}"
    parts = []
    if low:
        parts.append(f"{'at least' if low[0] == 'ge' else 'more than'} {low[1]}")
    if high:
        parts.append(f"{'at most' if high[0] == 'le' else 'less than'} {high[1]}")
    return "expected " + " and ".join(parts) if parts else "expected a value in range"


_EXPECTED = {
    "int_parsing": ("not an integer", "expected a whole number"),
    "int_type": ("not an integer", "expected a whole number"),
    "int_from_float": ("not a whole number", "expected a whole number"),
    "float_parsing": ("not a number", "expected a number"),
    "float_type": ("not a number", "expected a number"),
    "bool_parsing": ("not a boolean", "expected true or false"),
    "bool_type": ("not a boolean", "expected true or false"),
    "string_type": ("not a string", "expected text"),
    "list_type": ("not a list", "expected a YAML list"),
    "dict_type": ("not a mapping", "expected a YAML mapping of keys"),
    "model_type": ("not a mapping", "expected a YAML mapping of keys"),
    "model_attributes_type": ("not a mapping", "expected a YAML mapping of keys"),
    "string_too_short": ("empty", "expected a non-empty string"),
}


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into (KEY.PATH, 'what is wrong (expected …)'); never echo the input."""
    loc = tuple(error["loc"])
    path = ""
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, part)
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return path, "required key is missing (expected a value here)"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return path, f"out of range ({_bounds(loc)})"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        word = "engine" if path.endswith("engine") else "value"
        return path, f"unknown {word} (expected one of {expected})"
    if kind in _EXPECTED:
        what, expected = _EXPECTED[kind]
        if kind in ("int_parsing", "int_type", "float_parsing", "float_type") and _field_at(loc) is not None:
            bounds = _bounds(loc)
            if bounds != "expected a value in range":
                expected = f"{expected}, {bounds[len('expected '):]}"
        return path, f"{what} ({expected})"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return path, message if "expected" in message else f"{message} (expected a valid value here)"


def _ensure_var_dir(var_dir: Path) -> None:
    try:
        var_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(str(var_dir), "", f"cannot create the data directory: {exc.strerror} (expected a writable LLMUR_VAR_DIR)") from None


def _generated_secret(var_dir: Path) -> str:
    """The embedded default's application secret: generated once, kept in var/ with mode 0600."""
    _ensure_var_dir(var_dir)
    path = var_dir / "application_secret"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process that started at the same moment wrote it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
    for _ in range(50):
        secret = path.read_text().strip()
        if secret:
            return secret
        import time
        time.sleep(0.02)  # the writer that won the O_EXCL race has not flushed yet
    raise ConfigError(str(path), "", "application secret file is empty (expected a secret: delete the file to generate one)")


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read the file (or the embedded default), apply the environment, validate, resolve."""
    env = dict(os.environ if env is None else env)
    path = path or env.get(ENV_CONFIG_PATH) or None
    source = str(path) if path else "embedded defaults"
    raw = _read_yaml(Path(path)) if path else {}
    raw = _interpolate(raw, env, source)
    for section in ("database_configuration", "cache_configuration", "database", "otel", "router_settings",
                    "litellm_settings", "general_settings"):
        # Folding and overrides below merge into these sections, so their shape is checked first.
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise ConfigError(source, section, "not a mapping (expected a YAML mapping of keys)")
    warnings = _warn_unknown_keys(raw)
    raw = _fold_foreign_shapes(raw)
    raw, origins = _apply_env_overrides(raw, env)

    def located(key: str, problem: str) -> ConfigError:
        if key in origins:
            where = "command line" if origins[key].startswith("--") else "environment"
            return ConfigError(where, origins[key], problem)
        return ConfigError(source, key, problem)

    try:
        config = LlmurConfig.model_validate(raw)
    except ValidationError as exc:
        raise located(*_describe(exc.errors()[0])) from None
    var_dir = Path(env.get("LLMUR_VAR_DIR") or BASE_DIR / "var").resolve()
    try:
        database = _resolve_database(config.database_configuration, source, var_dir)
        cache = _resolve_cache(config.cache_configuration, source)
    except ConfigError as exc:
        raise located(exc.key, exc.problem) from None
    if database.engine == "sqlite" and database.name != ":memory:":
        _ensure_var_dir(Path(database.name).parent)
    secret = config.application_secret.get_secret_value() if config.application_secret else _generated_secret(var_dir)
    if len(secret) < 16:
        raise ConfigError(source, "application_secret", "too short (expected at least 16 characters)")
    return Settings(
        source=source, config=config, database=database, cache=cache, application_secret=secret,
        master_keys=[k.get_secret_value() for k in config.master_keys if k.get_secret_value()],
        var_dir=var_dir, warnings=warnings, embedded=not path,
    )


# --------------------------------------------------------------------------- printing

_SECRET_KEY_NAMES = re.compile(
    r"(secret|passw|api_key|api-key|apikey|master_key|token|credential|private|authorization|access_key)", re.I)
# scheme://user:PASSWORD@host and Go's user:PASSWORD@tcp(host) DSN
_URL_PASSWORD = re.compile(r"(//[^:/@]*:)([^@]+)(@)")
_DSN_PASSWORD = re.compile(r"^([^:@/]*:)([^@]+)(@tcp\()")


_QUERY_SECRET = re.compile(r"([?&][^=&]*(?:pass|secret|token|key)[^=&]*=)([^&]+)", re.I)


def _mask_url(value: str) -> str:
    value = _URL_PASSWORD.sub(r"\1***\3", value)
    value = _QUERY_SECRET.sub(r"\1***", value)
    return _DSN_PASSWORD.sub(r"\1***\3", value)


def masked(value: Any, key: str = "") -> Any:
    """A copy of the configuration fit to print: secrets become '***', URL passwords too."""
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        if not secret:
            return ""
        if _SECRET_KEY_NAMES.search(key):
            return "***"
        shown = _mask_url(secret)
        return shown if "://" in secret or shown != secret else "***"
    if isinstance(value, BaseModel):
        return {k: masked(getattr(value, k), k) for k in type(value).model_fields} | {
            k: masked(v, k) for k, v in (value.model_extra or {}).items()}
    if isinstance(value, dict):
        return {k: masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, key) for v in value]
    if isinstance(value, str):
        if _SECRET_KEY_NAMES.search(key) and value:
            return "***"
        return _mask_url(value)
    return value
