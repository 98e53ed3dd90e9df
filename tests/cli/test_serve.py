"""`llmur-proxy` serving: the embedded default, gunicorn workers, and concurrent first starts."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import free_port

KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def wait_status(server, path: str, status: int = 200, timeout: float = 60) -> dict:
    """Poll until the server answers path with status; fail with its output if it dies or never does."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"llmur-proxy exited with {server.process.returncode}:\n{server.stop()}")
        try:
            last = get(server.url + path)
            if last[0] == status:
                return last[1]
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{server.url}{path} did not answer {status} within {timeout} s (last: {last}):\n{server.stop()}")


def test_embedded_default_serves_and_prints_master_key_once(servers, clean_env, tmp_path):
    """No config and no services: SQLite under var/, a generated master key shown once, stored hashed."""
    var = Path(clean_env["LLMUR_VAR_DIR"])
    first = servers([], clean_env, free_port(), cwd=tmp_path)
    assert wait_status(first, "/health/liveliness") == {"status": "alive"}
    assert wait_status(first, "/health/readiness")["status"] == "healthy"
    output = first.stop()
    keys = KEY.findall(output)
    assert len(keys) == 1, output
    master_key = keys[0]
    assert "database: sqlite" in output and "llmur.sqlite3" in output and "cache:    local" in output

    second = servers([], clean_env, free_port(), cwd=tmp_path)
    wait_status(second, "/health/liveliness")
    second_output = second.stop()
    assert KEY.findall(second_output) == [], second_output
    assert "Traceback" not in output + second_output

    files = [path for path in var.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"llmur.sqlite3", "application_secret", "master_key.hmac"}
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600, path
        assert master_key.encode() not in path.read_bytes(), f"{path} holds the plaintext master key"
    secret = (var / "application_secret").read_text().strip()
    expected = hmac.new(secret.encode(), master_key.encode(), hashlib.sha256).hexdigest()
    assert (var / "master_key.hmac").read_text().strip() == expected


def test_two_workers_run_gunicorn_and_serve(servers, clean_env, tmp_path):
    """--workers 2 serves through gunicorn with uvicorn workers; config warnings print once, not per worker."""
    config = tmp_path / "config.yaml"
    config.write_text("general_settings:\n  alerting: [slack]\nmaster_keys: [sk-configured-master-key-0001]\n")
    database = tmp_path / "workers.sqlite3"
    server = servers(["--configuration", str(config), "--workers", "2", "--database-url", f"sqlite:///{database}"],
                     clean_env, free_port())
    assert wait_status(server, "/health/liveliness") == {"status": "alive"}
    for _ in range(10):
        assert get(server.url + "/health/readiness")[0] == 200
    output = server.stop()
    assert "(2 workers)" in output
    assert len(re.findall(r"Booting worker with pid", output)) >= 2, output
    assert output.count("general_settings.alerting: not supported by llmur yet, ignored") == 1, output
    assert database.exists(), "--database-url was not used"
    assert "sk-configured-master-key-0001" not in output


def _admin_url(env_name: str, default: str) -> str:
    return os.environ.get(env_name, default)


def _start_four(servers, clean_env, url: str) -> list:
    # A short pool timeout so readiness answers promptly once the database is gone.
    env = clean_env | {"DATABASE_URL": url, "DATABASE_POOL_TIMEOUT": "2"}
    started = [servers([], env, free_port()) for _ in range(4)]
    for server in started:
        body = wait_status(server, "/health/readiness", timeout=120)
        assert body["database"] == "connected"
    return started


def test_four_processes_migrate_an_empty_postgresql_database(servers, clean_env):
    import psycopg

    base = urlsplit(_admin_url("LLMUR_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    name = f"llmur_found_race_{os.getpid()}"
    admin = psycopg.connect(base._replace(path="/postgres").geturl(), autocommit=True)
    admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        started = _start_four(servers, clean_env, base._replace(path=f"/{name}").geturl())
        with psycopg.connect(base._replace(path=f"/{name}").geturl()) as conn:
            total, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT (app, name)) FROM django_migrations").fetchone()
        assert total == distinct > 0  # every migration applied exactly once

        # The database goes away: readiness says so with 503 and names it, liveliness stays 200.
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        body = wait_status(started[0], "/health/readiness", status=503, timeout=30)
        assert body["status"] == "unhealthy" and "database" in body["down"]
        assert get(started[0].url + "/health/liveliness")[0] == 200
    finally:
        for server in servers.started:
            server.stop()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_four_processes_migrate_an_empty_mariadb_database(servers, clean_env):
    import MySQLdb

    base = urlsplit(_admin_url("LLMUR_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/llmur"))
    name = f"llmur_found_race_{os.getpid()}"
    admin = MySQLdb.connect(host=base.hostname, port=base.port or 3306, user=base.username or "root",
                            password=base.password or "")
    cursor = admin.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        _start_four(servers, clean_env, base._replace(path=f"/{name}").geturl())
        cursor.execute(f"SELECT count(*), count(DISTINCT app, name) FROM `{name}`.django_migrations")
        total, distinct = cursor.fetchone()
        assert total == distinct > 0
    finally:
        for server in servers.started:
            server.stop()
        cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def test_embedded_default_needs_no_services(clean_env):
    """No config: SQLite under var/, the local-memory cache, and Celery tasks run in-process."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], "
            "s.CACHES['default']['BACKEND'], s.CELERY_TASK_ALWAYS_EAGER, s.CELERY_BROKER_URL)")
    env = clean_env | {"DJANGO_SETTINGS_MODULE": "llmur.settings"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    engine, name, cache, eager, broker = result.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert name == str(Path(clean_env["LLMUR_VAR_DIR"]).resolve() / "llmur.sqlite3")
    assert cache == "django.core.cache.backends.locmem.LocMemCache"
    assert (eager, broker) == ("True", "memory://")


def test_four_processes_start_at_once_on_one_embedded_sqlite(servers, clean_env, tmp_path):
    """The SQLite file lock serializes migrations; exactly one process generates the master key."""
    started = [servers([], clean_env, free_port(), cwd=tmp_path) for _ in range(4)]
    for server in started:
        assert wait_status(server, "/health/readiness", timeout=120)["status"] == "healthy"
    outputs = [server.stop() for server in started]
    assert sum(len(KEY.findall(output)) for output in outputs) == 1, outputs
    assert not any("Traceback" in output for output in outputs)
