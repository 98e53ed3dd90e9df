"""Database URLs in every spelling users bring: Django/SQLAlchemy URLs and the Go driver's MySQL DSN."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from llmur.config.errors import ConfigError
from llmur.config.resolved import ResolvedDatabase

SCHEMES = {
    "postgres": "postgres", "postgresql": "postgres", "pgsql": "postgres",
    "mysql": "mysql", "mariadb": "mysql",
    "sqlite": "sqlite", "sqlite3": "sqlite",
}
GO_MYSQL_DSN = re.compile(r"^(?:(?P<user>[^:@/]*)(?::(?P<password>[^@]*))?@)?tcp\((?P<host>[^:)]+)(?::(?P<port>\d+))?\)/(?P<db>[^?]*)(?:\?(?P<query>.*))?$")


def engine_from_url(url: str) -> str | None:
    if GO_MYSQL_DSN.match(url):
        return "mysql"
    return SCHEMES.get(urlsplit(url).scheme.split("+", 1)[0].lower())


def parse_database_url(url: str, source: str, key: str, var_dir: Path) -> ResolvedDatabase:
    """Normalize Django-, SQLAlchemy- and Go-style database URLs to one ResolvedDatabase."""
    go = GO_MYSQL_DSN.match(url)
    if go:
        query = dict(parse_qsl(go.group("query") or ""))
        options = mysql_tls(query.get("tls"))
        return ResolvedDatabase(engine="mysql", name=go.group("db"), host=go.group("host"),
                                port=int(go.group("port") or 3306), user=unquote(go.group("user") or ""),
                                password=unquote(go.group("password") or ""), options=options)
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0].lower()
    engine = SCHEMES.get(scheme)
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
        resolved.options = pg_tls(sslmode, query.get("sslrootcert"), query.get("sslcert"), query.get("sslkey"))
        if query.get("connect_timeout"):
            resolved.options["connect_timeout"] = int(query["connect_timeout"])
    else:
        resolved.options = mysql_tls(query.get("tls") or query.get("ssl") or query.get("ssl_mode"),
                                      query.get("ssl_ca"), query.get("ssl_cert"), query.get("ssl_key"))
    return resolved


def pg_tls(mode: str | None, ca: str | None = None, cert: str | None = None, key: str | None = None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if mode:
        options["sslmode"] = mode
    for name, value in (("sslrootcert", ca), ("sslcert", cert), ("sslkey", key)):
        if value:
            options[name] = value
    return options


def mysql_tls(mode: str | None, ca: str | None = None, cert: str | None = None, key: str | None = None) -> dict[str, Any]:
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
