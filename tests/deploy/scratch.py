"""Throw-away databases on the real PostgreSQL and MariaDB servers, for tests that run llmur as a subprocess.

Those processes get their own DATABASE_URL, so they never touch pytest-django's test database.
The server comes from the test command's variables (LLMUR_TEST_PG_URL / LLMUR_TEST_MYSQL_URL),
else DATABASE_URL when it names that engine, else the local default; the database name is
llmur_pkg_<purpose>_<pid>, so runs beside each other never share one.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from llmur.config import ResolvedDatabase, parse_database_url

_DEFAULTS = {"postgres": "postgresql://postgres@127.0.0.1:5432/llmur", "mysql": "mysql://root@127.0.0.1:3306/llmur"}
_OVERRIDES = {"postgres": "LLMUR_TEST_PG_URL", "mysql": "LLMUR_TEST_MYSQL_URL"}


def _server(engine: str) -> ResolvedDatabase:
    url = os.environ.get(_OVERRIDES[engine])
    if not url:
        current = os.environ.get("DATABASE_URL", "")
        scheme = current.split(":", 1)[0].split("+", 1)[0].lower()
        same_engine = {"postgres": ("postgres", "postgresql"), "mysql": ("mysql", "mariadb")}[engine]
        url = current if scheme in same_engine else _DEFAULTS[engine]
    return parse_database_url(url, "tests", "DATABASE_URL", Path("/tmp"))


def _url(engine: str, server: ResolvedDatabase, name: str) -> str:
    auth = quote(server.user)
    if server.password:
        auth += ":" + quote(server.password, safe="")
    scheme = "postgresql" if engine == "postgres" else "mysql"
    return f"{scheme}://{auth}@{server.host}:{server.port}/{name}"


def _admin(engine: str, server: ResolvedDatabase, statements: list[str]) -> None:
    if engine == "postgres":
        import psycopg

        with psycopg.connect(host=server.host, port=server.port, user=server.user, password=server.password or None,
                             dbname="postgres", autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)
    else:
        import MySQLdb

        conn = MySQLdb.connect(host=server.host, port=server.port, user=server.user, password=server.password)
        try:
            cursor = conn.cursor()
            for statement in statements:
                cursor.execute(statement)
        finally:
            conn.close()


def _drop(engine: str, name: str) -> str:
    return f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' if engine == "postgres" else f"DROP DATABASE IF EXISTS `{name}`"


@contextmanager
def scratch_database(engine: str, purpose: str) -> Iterator[str]:
    """An empty database on the engine's server for the duration of the block; yields its URL."""
    server = _server(engine)
    name = f"llmur_pkg_{purpose}_{os.getpid()}"
    create = (f'CREATE DATABASE "{name}"' if engine == "postgres"
              else f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    _admin(engine, server, [_drop(engine, name), create])
    try:
        yield _url(engine, server, name)
    finally:
        _admin(engine, server, [_drop(engine, name)])


def query(url: str, sql: str) -> list[tuple]:
    """Run one read-only query against a database given by URL, outside Django."""
    db = parse_database_url(url, "tests", "url", Path("/tmp"))
    if db.engine == "postgres":
        import psycopg

        with psycopg.connect(host=db.host, port=db.port, user=db.user, password=db.password or None,
                             dbname=db.name) as conn:
            return conn.execute(sql).fetchall()
    if db.engine == "mysql":
        import MySQLdb

        conn = MySQLdb.connect(host=db.host, port=db.port, user=db.user, password=db.password, database=db.name)
        try:
            cursor = conn.cursor()
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            conn.close()
    import sqlite3

    with sqlite3.connect(db.name) as conn:
        return conn.execute(sql).fetchall()
