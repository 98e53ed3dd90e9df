"""The database block and database URLs: each shape the loader accepts, down to what Django and the
drivers are given (llmur/config/urls.py, llmur/config/resolve.py)."""
from __future__ import annotations

import pytest

from llmur.config import load_config


def test_sqlalchemy_database_block(write, env):
    loaded = load_config(write("""
        database:
          url: "postgresql+asyncpg://llm_proxy_user:secure_password@localhost:5432/llm_proxy"
          pool_size: 10
          max_overflow: 20
          pool_timeout: 15
          echo: true
          auto_migrate: false
    """), env=env)
    db = loaded.database
    assert (db.engine, db.host, db.port, db.name, db.user, db.password) == (
        "postgres", "localhost", 5432, "llm_proxy", "llm_proxy_user", "secure_password")
    assert (db.max_connections, db.pool_timeout, db.echo) == (30, 15, True)
    assert loaded.config.auto_migrate is False


@pytest.mark.parametrize("url, expected", [
    ("postgresql+asyncpg://u:p%40ss@h:5432/db?ssl=require",
     {"engine": "postgres", "host": "h", "port": 5432, "name": "db", "password": "p@ss", "options": {"sslmode": "require"}}),
    ("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem&connect_timeout=10",
     {"engine": "postgres", "port": 5432, "options": {"sslmode": "verify-full", "sslrootcert": "/ca.pem",
                                                       "sslcert": "/c.pem", "sslkey": "/k.pem", "connect_timeout": 10}}),
    ("postgresql+asyncpg://user:password@/db?host=/var/run/postgresql", {"host": "/var/run/postgresql", "name": "db"}),
    ("mysql+pymysql://root:pw@127.0.0.1/llmur", {"engine": "mysql", "port": 3306, "name": "llmur", "options": {}}),
    ("mysql://root@h:3306/llmur?ssl_mode=verify-ca&ssl_ca=/ca.pem",
     {"engine": "mysql", "options": {"ssl_mode": "VERIFY_CA", "ssl": {"ca": "/ca.pem"}}}),
    ("mariadb://root@h/llmur?ssl=require", {"engine": "mysql", "options": {"ssl_mode": "REQUIRED"}}),
    ("sqlite:////abs/path/proxy.db", {"engine": "sqlite", "name": "/abs/path/proxy.db"}),
    ("sqlite+aiosqlite:///:memory:", {"engine": "sqlite", "name": ":memory:"}),
])
def test_database_urls_are_normalized(env, url, expected):
    db = load_config(None, env=env | {"DATABASE_URL": url}).database
    assert {key: getattr(db, key) for key in expected} == expected


def test_relative_sqlalchemy_sqlite_url_resolves_against_working_directory(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = load_config(None, env=env | {"DATABASE_URL": "sqlite+aiosqlite:///./var/db/proxy.db"}).database
    assert db.name == str(tmp_path / "var" / "db" / "proxy.db")
    assert (tmp_path / "var" / "db").is_dir()


def test_tls_fields_in_database_configuration(write, env):
    pg = load_config(write("""
        database_configuration:
          engine: postgres
          database: llmur
          ssl_mode: verify-ca
          ssl_ca: /etc/llmur/ca.pem
          ssl_cert: /etc/llmur/client.pem
          ssl_key: /etc/llmur/client.key
    """), env=env).database
    assert pg.options == {"sslmode": "verify-ca", "sslrootcert": "/etc/llmur/ca.pem",
                          "sslcert": "/etc/llmur/client.pem", "sslkey": "/etc/llmur/client.key"}
    my = load_config(write("""
        database_configuration:
          engine: mysql
          database: llmur
          ssl_mode: verify-full
          ssl_ca: /etc/llmur/ca.pem
    """, "mysql.yaml"), env=env).database
    assert my.options == {"ssl": {"ca": "/etc/llmur/ca.pem"}, "ssl_mode": "VERIFY_IDENTITY"}


def test_tls_options_reach_django_and_the_drivers_accept_them(env):
    """settings._database passes TLS options where psycopg and mysqlclient read them."""
    import psycopg

    from llmur.settings import _database

    pg = load_config(None, env=env | {"DATABASE_URL": "postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem"})
    options = _database(pg.database)["OPTIONS"]
    assert options["sslmode"] == "verify-full" and options["sslrootcert"] == "/ca.pem"
    # make_conninfo rejects parameter names libpq does not know.
    conninfo = psycopg.conninfo.make_conninfo(**{k: v for k, v in options.items() if k != "pool"})
    assert "sslmode=verify-full" in conninfo and "sslrootcert=/ca.pem" in conninfo
    assert options["pool"]["max_size"] == 10

    my = load_config(None, env=env | {"DATABASE_URL": "mysql://u@h/db?ssl_mode=verify-ca&ssl_ca=/ca.pem"})
    entry = _database(my.database)
    assert entry["OPTIONS"]["ssl"] == {"ca": "/ca.pem"} and entry["OPTIONS"]["ssl_mode"] == "VERIFY_CA"
    assert entry["OPTIONS"]["charset"] == "utf8mb4"


def test_pool_sizes_reach_psycopg_pool(write, env):
    from llmur.settings import _database

    db = load_config(write("""
        database_configuration:
          engine: postgres
          database: llmur
          min_connections: 3
          max_connections: 12
          pool_timeout: 7
    """), env=env).database
    assert _database(db)["OPTIONS"]["pool"] == {"min_size": 3, "max_size": 12, "timeout": 7}


def test_sqlite_gets_wal_and_busy_timeout(env):
    from llmur.settings import _database

    entry = _database(load_config(None, env=env).database)
    assert "journal_mode=WAL" in entry["OPTIONS"]["init_command"]
    assert "busy_timeout" in entry["OPTIONS"]["init_command"]
