"""From the validated sections to the services to connect to: defaults, TLS options, replicas."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from llmur.config.errors import ConfigError
from llmur.config.resolved import ResolvedCache, ResolvedDatabase
from llmur.config.schema import CacheConfiguration, DatabaseConfiguration
from llmur.config.urls import mysql_tls, parse_database_url, pg_tls


def resolve_database(cfg: DatabaseConfiguration, source: str, var_dir: Path) -> ResolvedDatabase:
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
        resolved.options.update(pg_tls(cfg.ssl_mode, cfg.ssl_ca, cfg.ssl_cert, cfg.ssl_key))
    elif resolved.engine == "mysql" and (cfg.ssl_mode or cfg.ssl_ca):
        resolved.options.update(mysql_tls(cfg.ssl_mode or "", cfg.ssl_ca, cfg.ssl_cert, cfg.ssl_key))
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
            copy = resolve_database(replica, source, var_dir)
        if copy.engine != resolved.engine:
            raise ConfigError(source, where, f"a {copy.engine} replica of a {resolved.engine} database "
                                             f"(expected a replica of the same engine)")
        resolved.replicas.append(copy)
    return resolved


def resolve_cache(cfg: CacheConfiguration, source: str) -> ResolvedCache:
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
        auth = f"{quote(cfg.username or '')}:{quote(cfg.password.get_secret_value())}@"
    scheme = "rediss" if cfg.ssl else "redis"
    if cfg.sentinels:
        return ResolvedCache(engine="redis", url=f"{scheme}://{auth}{cfg.service_name}/{cfg.db}",
                             sentinels=[(s.host, s.port) for s in cfg.sentinels], service_name=cfg.service_name or "",
                             sentinel_username=cfg.sentinel_username or "",
                             sentinel_password=cfg.sentinel_password.get_secret_value() if cfg.sentinel_password else "")
    return ResolvedCache(engine="redis", url=f"{scheme}://{auth}{cfg.host}:{cfg.port}/{cfg.db}")
