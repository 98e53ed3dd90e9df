"""What a process does before it serves: reach the services, migrate once, seed what config declares."""
from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection

from accounts.master_keys import ensure_master_key, master_key_file
from llmur import redis_clients
from llmur.core import health

logger = logging.getLogger("llmur.startup")

MIGRATION_LOCK_ID = 0x6C6C6D7572  # "llmur": the advisory-lock number every llmur process agrees on


class ServiceUnreachable(Exception):
    """A database or cache that cannot be reached at start; the text is the one line users read."""

    exit_code = 3


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    # Drivers sometimes quote the DSN back; never let a password through.
    password = settings.DATABASES["default"].get("PASSWORD")
    if password:
        text = text.replace(password, "***")
    return text[:300]


def check_database() -> None:
    db = settings.LLMUR.database
    try:
        if connection.vendor == "postgresql":
            # Probe with one plain connection first: psycopg's pool would retry in the background,
            # log a warning per attempt and give up only after pool_timeout with no real reason.
            import psycopg

            params = connection.get_connection_params()
            params.setdefault("connect_timeout", 5)
            psycopg.connect(**params).close()
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            tls_cipher = _mysql_tls_cipher(cursor) if connection.vendor == "mysql" else None
    except Exception as exc:  # noqa: BLE001 - any driver error means "unreachable" here
        raise ServiceUnreachable(f"llmur: database {db.engine} at {db.address} is unreachable: {_reason(exc)}") from None
    if tls_cipher == "" and connection.settings_dict["OPTIONS"].get("ssl_mode") == "REQUIRED":
        # mysqlclient built on MariaDB Connector/C does not enforce ssl_mode REQUIRED (only the
        # VERIFY_* modes), so a server without TLS would be used in clear text: refuse instead.
        raise ServiceUnreachable(f"llmur: database {db.engine} at {db.address} is unreachable: TLS is required "
                                 "(ssl_mode) but the server did not negotiate it")


def _mysql_tls_cipher(cursor) -> str:
    cursor.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    row = cursor.fetchone()
    return (row[1] or "") if row else ""


def check_cache() -> None:
    cache_cfg = settings.LLMUR.cache
    if cache_cfg.engine != "redis":
        return
    client = redis_clients.sync_client(socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        raise ServiceUnreachable(f"llmur: cache redis at {cache_cfg.address} is unreachable: {_reason(exc)}") from None
    kept, detail = redis_persistence(client)
    if kept is False:
        logger.warning("redis at %s keeps nothing on disk (appendonly no, save \"\"): spend events still queued in "
                       "it are lost if it restarts or crashes; set appendonly yes", cache_cfg.address)
    health.readiness_check("redis_persistence")(lambda: (True, detail))


def redis_persistence(client) -> tuple[bool | None, str]:
    """Would Redis keep the spend queue across a restart? (True/False, or None when it will not say.)

    Read with CONFIG GET appendonly / save at start; a managed Redis may refuse CONFIG (renamed or
    not permitted), which is not an error: the answer is then unknown.
    """
    try:
        appendonly = client.config_get("appendonly").get("appendonly", "")
        save = client.config_get("save").get("save", "")
    except Exception as exc:  # noqa: BLE001 - CONFIG refused, renamed or unknown
        logger.info("redis persistence unknown: CONFIG GET refused (%s)", exc.__class__.__name__)
        return None, "unknown (CONFIG GET refused)"
    if str(appendonly).lower() == "yes":
        return True, "aof"
    if str(save).strip():
        return True, f"rdb snapshots only (save {save}): spend events since the last snapshot are lost on a crash"
    return False, ("none: neither AOF (appendonly) nor RDB snapshots (save) are on; spend events queued in Redis "
                   "are lost if it restarts")


@contextmanager
def migration_lock() -> Iterator[None]:
    """Serialize start-up migrations across processes that start at the same moment."""
    vendor = connection.vendor
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK_ID])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK_ID])
    elif vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT GET_LOCK('llmur_migrate', 600)")
            (acquired,) = cursor.fetchone()
        if acquired != 1:
            raise ServiceUnreachable("llmur: timed out after 600 s waiting for another process's migrations")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT RELEASE_LOCK('llmur_migrate')")
    else:
        # Next to the database file, so every process using that file agrees on the lock even
        # when their var/ directories differ.
        lock_path = _sqlite_lock_path()
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_lock_path() -> Path:
    db = settings.LLMUR.database
    if db.name == ":memory:":
        return Path(settings.LLMUR.var_dir) / "migrate.lock"
    return Path(db.name + ".migrate-lock")


def migrate() -> None:
    with migration_lock():
        call_command("migrate", interactive=False, verbosity=0)


def sync_config_deployments() -> int:
    """Mirror the config's model_list into ModelDeployment so admin, reports and routing see one list."""
    # Not at the top: llmur.cli imports this module before django.setup(), and gateway's models need it.
    from gateway.deployments import deployment_sync_from_config

    return deployment_sync_from_config(settings.LLMUR.config.model_list)


def secure_var_files() -> None:
    """Make the files llmur keeps under var/ private to this user (mode 0600)."""
    var_dir = Path(settings.LLMUR.var_dir)
    candidates = [var_dir / "application_secret", master_key_file()]
    db = settings.LLMUR.database
    if db.engine == "sqlite":
        candidates.append(_sqlite_lock_path())
        if db.name != ":memory:":
            candidates += [Path(db.name + suffix) for suffix in ("", "-wal", "-shm")]
    for path in candidates:
        try:
            os.chmod(path, 0o600)
        except FileNotFoundError:
            pass


def close_connections() -> None:
    """Close start-up connections, including psycopg's pool, before the server takes over."""
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.close()
        close_pool = getattr(conn, "close_pool", None)
        if close_pool is not None:
            close_pool()


def prepare(*, migrate_now: bool | None = None) -> str | None:
    """Everything the server needs before it binds; returns a freshly generated master key, if any."""
    check_database()
    check_cache()
    db = settings.LLMUR.database
    migrating = settings.LLMUR.config.auto_migrate if migrate_now is None else migrate_now
    try:
        if migrating:
            migrate()
        sync_config_deployments()
    except DatabaseError as exc:
        hint = "" if migrating else " (migrations were not run: run manage.py migrate)"
        raise ServiceUnreachable(f"llmur: database {db.engine} at {db.address} is not ready: {_reason(exc)}{hint}") from None
    new_master_key = ensure_master_key()
    secure_var_files()
    return new_master_key
