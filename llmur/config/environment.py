"""The environment over the file: ${VAR} and os.environ/VAR references, and variables that override keys.

The variables are llmur's own (LLMUR_*) and those the other proxies' users already set
(DATABASE_URL, REDIS_URL, LiteLLM's LITELLM_MASTER_KEY, llm-proxy's DB_DRIVER, POOL_SIZE and
CONN_MAX_LIFETIME, the SQLAlchemy-style DATABASE_POOL_SIZE/MAX_OVERFLOW/...).
"""
from __future__ import annotations

import re
from typing import Any

from llmur.config.errors import ConfigError, join_key

ENV_CONFIG_PATH = "LLMUR_CONFIGURATION"
# Set by `llmur-proxy --database-url`, so errors name the flag rather than DATABASE_URL.
CLI_DATABASE_URL = "LLMUR_DATABASE_URL_FROM_CLI"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str], source: str, path: str = "") -> Any:
    """Replace ${VAR}, ${VAR:-default} and os.environ/VAR references, recursively."""
    if isinstance(value, dict):
        return {k: interpolate(v, env, source, join_key(path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, source, f"{path}[{i}]") for i, v in enumerate(value)]
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


def apply_env_overrides(raw: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply the environment over the file; also return which variable set which key.

    The second value maps a dotted key to the variable that set it, so an invalid value is
    reported against the variable the user actually typed, not against the file.
    """
    raw = dict(raw)
    origins: dict[str, str] = {}
    db = dict(raw.get("database_configuration") or {})
    cache = dict(raw.get("cache_configuration") or {})
    for name, key in (("LLMUR_LOG_LEVEL", "log_level"), ("LLMUR_HOST", "host"), ("LLMUR_TIME_ZONE", "time_zone"),
                      ("LLMUR_APPLICATION_SECRET", "application_secret")):
        if env.get(name):
            raw[key] = env[name]
            origins[key] = name
    if env.get("LLMUR_TRUSTED_PROXIES"):
        raw["trusted_proxies"] = [item.strip() for item in env["LLMUR_TRUSTED_PROXIES"].split(",") if item.strip()]
        origins["trusted_proxies"] = "LLMUR_TRUSTED_PROXIES"
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
        origins["database_configuration.engine"] = "DB_DRIVER"
    if env.get("DATABASE_URL"):
        db["url"] = env["DATABASE_URL"]
        origins["database_configuration.url"] = (
            "--database-url" if env.get(CLI_DATABASE_URL) else "DATABASE_URL")
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
