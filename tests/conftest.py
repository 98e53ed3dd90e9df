"""Shared fixtures: real services (the database under test, Redis) and the project's fake provider.

The database comes from DATABASE_URL (scripts/test runs the suite on PostgreSQL and the
db_matrix tests again on SQLite and MariaDB). Redis, when REDIS_URL is set, is real too; only
the model provider is faked, by the project's own fakeprovider package.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _flush_survives_live_writers():
    """Retry the test database's flush when a live server's write-behind collides with it.

    A transactional test ends by truncating every table, while llmur servers the tests start keep
    writing (spend, last-used times, refusal counts, flushed every few seconds and at shutdown). On
    PostgreSQL one TRUNCATE locks the tables in a row, so a writer holding one table and wanting
    another (a foreign-key check) can deadlock with it; PostgreSQL then aborts one side. The server
    retries its write; this makes the flush retry too, instead of failing the test's teardown.
    """
    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(1, 6):
            try:
                return original(self, sql_list)
            except OperationalError as error:
                if attempt == 5:
                    raise
                sys.stderr.write(f"test database flush: attempt {attempt} failed ({error}); retrying\n")
                time.sleep(0.2 * attempt)

    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    BaseDatabaseOperations.execute_sql_flush = original


# --------------------------------------------------------------------------- migrated PostgreSQL databases

MIGRATED_POSTGRES = "migrated_postgres"
_WANTS_TEMPLATE = pytest.StashKey[bool]()        # does a selected test use migrated_postgres?
_TEMPLATE = pytest.StashKey["str | None"]()      # the template's name, once made


def pytest_collection_modifyitems(config, items):
    """Note whether any selected test wants migrated_postgres, so the template is made only then; such a
    test is a database test (pytest-django sets the test database up only when a selected test is one)."""
    wanting = [item for item in items if MIGRATED_POSTGRES in getattr(item, "fixturenames", ())]
    for item in wanting:
        if item.get_closest_marker("django_db") is None:
            item.add_marker(pytest.mark.django_db)
    config.stash[_WANTS_TEMPLATE] = bool(wanting)


def _postgres_admin(db: dict, statements: list[str]) -> None:
    import psycopg

    with psycopg.connect(host=db.get("HOST") or "127.0.0.1", port=db.get("PORT") or 5432, user=db.get("USER"),
                         password=db.get("PASSWORD") or None, dbname="postgres", autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker, request):
    """pytest-django's test database; on PostgreSQL, when a selected test asks for migrated_postgres, also a
    copy of it made right after its migrations (<test database>_migrated), the template migrated_postgres
    copies. Made here because PostgreSQL copies a database only while nobody is connected to it: later,
    servers the tests start hold connections to the test database."""
    from django.db import connections

    db = connections["default"].settings_dict      # the test database's (settings.DATABASES may still name the original)
    template = None
    if request.config.stash.get(_WANTS_TEMPLATE, False) and db["ENGINE"] == "django.db.backends.postgresql":
        template = f"{db['NAME']}_migrated"
        with django_db_blocker.unblock():
            for connection in connections.all():
                connection.close()
                if hasattr(connection, "close_pool"):
                    connection.close_pool()
            _postgres_admin(db, [f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)',
                                 f'CREATE DATABASE "{template}" TEMPLATE "{db["NAME"]}"'])
    request.config.stash[_TEMPLATE] = template
    yield
    if template:
        _postgres_admin(db, [f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'])


@pytest.fixture(scope="session")
def migrated_postgres(django_db_setup, request):
    """migrated_postgres(name) -> the URL of a new PostgreSQL database `name`, with every migration applied.

    A copy of the test database as its migrations left it, made in a second instead of migrating again
    (which takes most of a minute on a loaded machine). What migrating an empty database does is proven
    where that is the subject (pytest-django's own setup, tests/cli/test_serve.py, tests/deploy). The
    caller drops the database (migrated_postgres.drop(name)); the session drops what is left.
    """
    from urllib.parse import quote

    from django.db import connections

    template = request.config.stash.get(_TEMPLATE, None)
    if template is None:
        pytest.skip("needs the test database on PostgreSQL (DATABASE_URL=postgresql://...)")
    db = connections["default"].settings_dict
    made: list[str] = []

    class Factory:
        template_name = template

        def __call__(self, name: str) -> str:
            _postgres_admin(db, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                                 f'CREATE DATABASE "{name}" TEMPLATE "{template}"'])
            made.append(name)
            auth = quote(db.get("USER") or "") + (":" + quote(db["PASSWORD"], safe="") if db.get("PASSWORD") else "")
            return f"postgresql://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{name}"

        def drop(self, name: str) -> None:
            _postgres_admin(db, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])

    yield Factory()
    _postgres_admin(db, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in made])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Poll url until it answers (any status), or fail with the process's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered:\n{output}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def wait_until(condition, *, timeout: float = 60.0, what: str = "the condition"):
    """Poll condition until it returns something true and return that; fail naming what never happened.

    The timeout is a safety net for a broken build, not a tuning knob: tests wait on what they need to see.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def chat_status(url: str, key: str, model: str = "mock-gpt", *, stream: bool = False, content: str = "hello",
                timeout: float = 20) -> int:
    """POST one chat completion with the standard library and return the HTTP status."""
    body = {"model": model, "messages": [{"role": "user", "content": content}], "stream": stream}
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class FakeProviderProcess:
    """Handle on a running fake provider (python -m fakeprovider): its base URL and its /stats counters."""

    def __init__(self, port: int, process: subprocess.Popen):
        self.port, self.process = port, process
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as response:
            return json.load(response)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/stats/reset", data=b"{}", method="POST")
        urllib.request.urlopen(request, timeout=5).read()


def start_fake_provider(*extra_args: str) -> FakeProviderProcess:
    """Start the fake provider on a port the system picks, read back from its first line of output."""
    process = subprocess.Popen([sys.executable, "-m", "fakeprovider", "--port", "0", *extra_args], cwd=str(ROOT),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    listening = re.search(r"listening on http://[\d.]+:(\d+)", line)
    if listening is None:
        process.kill()
        raise RuntimeError(f"the fake provider did not start: {line}{process.stdout.read()}")
    return FakeProviderProcess(int(listening.group(1)), process)


@pytest.fixture(scope="session")
def fake_provider():
    """One fake provider for the whole session; tests reset its counters when they count."""
    upstream = start_fake_provider()
    yield upstream
    upstream.process.terminate()
    upstream.process.wait(timeout=10)


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL (scripts/test sets it)")
    return url


@pytest.fixture
def redis_client(redis_url):
    """A client on the test Redis database, emptied before the test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


# --------------------------------------------------------------------------- a real llmur server

TEST_MASTER_KEY = "sk-llmur-test-master"


def database_url_for_subprocess() -> str:
    """A URL for the database the tests use (pytest-django's test database, once it is set up)."""
    from urllib.parse import quote

    from django.conf import settings

    db = settings.DATABASES["default"]
    engine = db["ENGINE"].rsplit(".", 1)[-1]
    if engine == "sqlite3":
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise RuntimeError("a server subprocess cannot share an in-memory SQLite test database; "
                               "run server tests on PostgreSQL or MariaDB")
        return f"sqlite:///{name}"
    scheme = {"postgresql": "postgresql", "mysql": "mysql"}[engine]
    auth = quote(db.get("USER") or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    return f"{scheme}://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or ''}/{db['NAME']}"


class Gateway:
    """Handle on a running llmur server process: .url, .master_key, .stop(), .output()."""

    def __init__(self, process: subprocess.Popen, port: int, config_path: Path, log_path: Path, master_key: str):
        self.process, self.port, self.config_path, self.log_path = process, port, config_path, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.master_key = master_key

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_gateway(config: dict, workers: int = 1, env: dict | None = None) -> Gateway:
    """Start `llmur-proxy` on a free port with this config (YAML-dumped) and wait until it serves.

    The database is the tests' database and the cache REDIS_URL when set, unless config or env say
    otherwise; master_keys defaults to [TEST_MASTER_KEY], application_secret to this process's. Needs the database set up (request the
    django_db_setup fixture) and rows created with django_db(transaction=True) to be visible to it.
    """
    import tempfile

    import yaml
    from django.conf import settings

    workdir = Path(tempfile.mkdtemp(prefix="llmur-gateway-"))
    # The same application_secret as this process, so keys it hashes and secrets it encrypts match.
    config = {"master_keys": [TEST_MASTER_KEY], "log_level": "warning", "application_secret": settings.SECRET_KEY,
              **config}
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    child_env = {k: v for k, v in os.environ.items()
                 if k not in ("LLMUR_CONFIGURATION", "LLMUR_MASTER_KEY", "LITELLM_MASTER_KEY")}
    child_env.update({"DATABASE_URL": database_url_for_subprocess(), "LLMUR_VAR_DIR": str(workdir / "var"),
                      "PYTHONUNBUFFERED": "1"})
    child_env.update(env or {})
    port = free_port()
    log_path = workdir / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmur.cli", "-c", str(config_path), "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--no-migrate"],
            cwd=str(ROOT), env=child_env, stdout=log, stderr=subprocess.STDOUT)
    handle = Gateway(process, port, config_path, log_path, str(config["master_keys"][0]))
    try:
        # A safety net, not a latency bound: on a loaded 2-core machine a two-worker server may take a minute.
        wait_for_http(f"{handle.url}/health/liveliness", timeout=180, process=process)
    except Exception:
        handle.stop()
        raise RuntimeError(f"llmur server did not start:\n{handle.output()}") from None
    return handle


def mock_model_list(upstream_url: str) -> list[dict]:
    """model_list entries for the fake provider: each provider family and each fault model."""
    v1 = f"{upstream_url}/v1"
    entries = [
        {"model_name": "mock-gpt", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1,
                                                      "api_key": "sk-upstream-openai-secret"}},
        {"model_name": "mock-claude", "litellm_params": {"model": "anthropic/mock-claude", "api_base": upstream_url,
                                                         "api_key": "sk-ant-upstream-secret"}},
    ]
    # The two "-leaves-" drips are each sent by one test only, so it can read their stream outcomes
    # (the fake provider's streams_by_model) without counting another test's streams.
    for fault in ("mock-400", "mock-429", "mock-500", "mock-cut", "mock-drip-50",
                  "mock-leaves-chat-drip-50", "mock-leaves-messages-drip-50"):
        entries.append({"model_name": fault, "litellm_params": {"model": f"openai/{fault}", "api_base": v1}})
    entries.append({"model_name": "mock-hang", "litellm_params": {"model": "openai/mock-hang", "api_base": v1,
                                                                  "timeout": 1, "stream_timeout": 1}})
    entries.append({"model_name": "mock-claude-cut", "litellm_params": {"model": "anthropic/mock-cut",
                                                                        "api_base": upstream_url}})
    return entries


@pytest.fixture(scope="session")
def gateway(django_db_setup, fake_provider):
    """One llmur server for the session, serving mock_model_list() on the fake provider."""
    server = start_gateway({"model_list": mock_model_list(fake_provider.url),
                            "router_settings": {"num_retries": 0}})
    yield server
    server.stop()


@pytest.fixture
def make_key(transactional_db):
    """tests.factories.make_key for a test whose server subprocess reads the key: committed
    (transactional_db), and it gives the plaintext the client sends."""
    from tests import factories

    return lambda **fields: factories.make_key(**fields).plaintext
