"""The gateways under test, started in their production shape against the run's fake provider.

llmur: a fresh PostgreSQL database and a flushed Redis database, migrations run once, then gunicorn
with one uvicorn worker pinned to the server core, and a Celery worker (with beat) draining spend.
LiteLLM: its own proxy CLI with one worker and no database, when it is installed; nothing is
installed by the benchmark itself.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import yaml

from bench.procs import ROOT, BenchError, Cores, Managed, free_port, start, wait_http

BENCH_MODEL = "bench-gpt"              # the model name clients ask every gateway for
LLMUR_UPSTREAM = "bench-llmur"         # the upstream model name llmur's deployment sends to the mock
LITELLM_UPSTREAM = "bench-litellm"     # ... and LiteLLM's, so the mock counts each gateway apart

# Variables of the caller's environment that would point a child at another database or cache.
_FOREIGN_ENV = ("LLMUR_", "DATABASE_", "REDIS_", "LITELLM_", "DB_", "POOL_SIZE", "CONN_MAX_LIFETIME")


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}


# --------------------------------------------------------------------------- services

def database_check_url(database_url: str) -> str:
    """The bench database's name, once the URL is known to be PostgreSQL and the name says "bench"."""
    parts = urlsplit(database_url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise BenchError(f"--database-url must be a PostgreSQL URL (the production shape), got scheme "
                         f"{parts.scheme!r}")
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise BenchError(f"refusing to drop database {name!r}: the bench database's name must contain "
                         "'bench' (it is dropped and recreated on every run)")
    return name


def database_recreate(database_url: str, template: str | None = None) -> None:
    """Drop and create the bench database named in database_url (its name must contain "bench"), empty,
    or as a copy of the template database (one already migrated: the run's migrations then find nothing
    to do)."""
    import psycopg
    from psycopg import sql

    name = database_check_url(database_url)
    parts = urlsplit(database_url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(create)
    except psycopg.OperationalError as exc:
        raise BenchError(f"PostgreSQL at {parts.hostname}:{parts.port or 5432} is unreachable: "
                         f"{str(exc).strip().splitlines()[0]}") from None
    except psycopg.errors.ObjectInUse:
        raise BenchError(f"--database-template {template}: PostgreSQL copies a database only while nobody is "
                         "connected to it; close its connections first") from None
    except psycopg.errors.InvalidCatalogName:
        raise BenchError(f"--database-template {template}: no such database") from None


def database_drop(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(parts.path.lstrip("/"))))


def redis_check_url(redis_url: str) -> int:
    """The bench's Redis database number, once it is known not to be database 0."""
    import redis

    try:
        kwargs = redis.connection.parse_url(redis_url)
    except ValueError as exc:
        raise BenchError(f"--redis-url: {exc}") from None
    db = int(kwargs.get("db", 0) or 0)
    if db == 0:
        raise BenchError("refusing to flush Redis database 0: give --redis-url a database of its own, "
                         "e.g. redis://127.0.0.1:6379/7")
    return db


def redis_flush(redis_url: str) -> None:
    """Empty the bench's Redis database: a fresh database reuses key ids that old counters still name."""
    import redis

    redis_check_url(redis_url)
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"Redis at {redis_url.split('@')[-1]} is unreachable: {exc}") from None
    finally:
        client.close()


def spend_rows(database_url: str) -> dict:
    import psycopg

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        total, ok = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success') FROM billing_spendlog").fetchone()
    return {"rows": total, "success_rows": ok}


# --------------------------------------------------------------------------- llmur

@dataclass
class LlmurServer:
    url: str
    key: str
    master_key: str
    env: dict
    web: Managed
    worker: Managed | None
    database_url: str

    @property
    def pid(self) -> int:
        return self.web.process.pid


def llmur_start(*, cores: Cores, workdir: Path, mock_url: str, database_url: str, redis_url: str,
                spend_worker: bool = True, database_template: str | None = None, workers: int = 1,
                extra_config: dict | None = None, beat: bool = True) -> LlmurServer:
    database_recreate(database_url, database_template)
    redis_flush(redis_url)
    master_key = "sk-bench-master-" + secrets.token_urlsafe(12)
    config = {
        "application_secret": secrets.token_urlsafe(32),
        "log_level": "warning",
        "master_keys": [master_key],
        "auto_migrate": False,
        "database_configuration": {"engine": "postgres", "url": database_url},
        "cache_configuration": {"engine": "redis", "url": redis_url},
        "model_list": [{
            "model_name": BENCH_MODEL,
            "litellm_params": {"model": f"openai/{LLMUR_UPSTREAM}", "api_base": f"{mock_url}/v1",
                               "api_key": "sk-upstream-bench", "input_cost_per_token": 2.5e-06,
                               "output_cost_per_token": 1.0e-05},
        }],
    } | (extra_config or {})
    config_path = workdir / "llmur.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = clean_env() | {
        "LLMUR_CONFIGURATION": str(config_path), "DATABASE_URL": database_url, "REDIS_URL": redis_url,
        "LLMUR_VAR_DIR": str(workdir / "var"), "DJANGO_SETTINGS_MODULE": "llmur.settings",
        "BENCH_UPSTREAM_MODELS": f"{LLMUR_UPSTREAM},{BENCH_MODEL}",
    }
    seeded = subprocess.run([sys.executable, "-m", "bench.seed"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    if seeded.returncode != 0:
        raise BenchError(f"preparing the llmur database failed (exit {seeded.returncode}):\n{seeded.stderr[-3000:]}")
    key = json.loads(seeded.stdout.strip().splitlines()[-1])["key"]

    port = free_port()
    web = start("llmur-gunicorn", cores.wrap([
        sys.executable, "-m", "gunicorn", "llmur.asgi:application", "-k", "uvicorn_worker.UvicornWorker",
        "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning", "--keep-alive", "75",
        "--graceful-timeout", "10"], role="server"), workdir=workdir, env=env)
    worker = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health/liveliness", web, timeout=60)
        if spend_worker:
            worker = start("llmur-celery", cores.wrap([
                sys.executable, "-m", "celery", "-A", "llmur.celery", "worker",
                *(["-B", "-s", str(workdir / "celerybeat-schedule")] if beat else []), "-l", "warning",
                "--concurrency", "1", "--without-gossip", "--without-mingle"], role="load"), workdir=workdir, env=env)
    except BaseException:
        web.stop()
        raise
    return LlmurServer(url=url, key=key, master_key=master_key, env=env, web=web, worker=worker,
                       database_url=database_url)


# --------------------------------------------------------------------------- bare baseline

def bare_start(*, cores: Cores, workdir: Path, mock_url: str) -> Managed:
    """bench/bare_app.py under gunicorn with one uvicorn worker, pinned like llmur."""
    port = free_port()
    env = clean_env() | {"BENCH_UPSTREAM": f"{mock_url}/v1/chat/completions"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    web = start("bare-gunicorn", cores.wrap([
        sys.executable, "-m", "gunicorn", "bench.bare_app:application", "-k", "uvicorn_worker.UvicornWorker",
        "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning", "--keep-alive", "75"], role="server"),
        workdir=workdir, env=env)
    web.extra["url"] = f"http://127.0.0.1:{port}"
    wait_http(f"{web.extra['url']}/v1/chat/completions", web, timeout=60)
    return web


# --------------------------------------------------------------------------- LiteLLM

@dataclass
class LitellmServer:
    url: str
    key: str
    web: Managed
    version: str

    @property
    def pid(self) -> int:
        return self.web.process.pid


def litellm_find(explicit: str | None) -> str | None:
    """The litellm CLI: an explicit path, else one on PATH or beside this Python."""
    if explicit and explicit != "auto":
        return explicit if Path(explicit).exists() else None
    beside = Path(sys.executable).parent / "litellm"
    return shutil.which("litellm") or (str(beside) if beside.exists() else None)


def litellm_start(*, binary: str, cores: Cores, workdir: Path, mock_url: str) -> LitellmServer:
    master_key = "sk-litellm-bench-" + secrets.token_urlsafe(8)
    config = {
        "model_list": [{"model_name": BENCH_MODEL, "litellm_params": {
            "model": f"openai/{LITELLM_UPSTREAM}", "api_base": f"{mock_url}/v1", "api_key": "sk-upstream-bench"}}],
        "general_settings": {"master_key": master_key},
        "litellm_settings": {"telemetry": False, "set_verbose": False},
    }
    config_path = workdir / "litellm.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    # No database: LiteLLM would pick DATABASE_URL up from the environment, so it is removed; the
    # cost map is read from the package, since this machine has no route to LiteLLM's download.
    env = clean_env() | {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                         "LITELLM_DONT_SHOW_FEEDBACK_BOX": "true"}
    port = free_port()
    web = start("litellm", cores.wrap([binary, "--config", str(config_path), "--host", "127.0.0.1",
                                       "--port", str(port), "--num_workers", "1"], role="server"),
                workdir=workdir, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/liveliness", web, timeout=180)
    version = "unknown"
    python = Path(binary).parent / "python"
    if python.exists():
        found = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
                               capture_output=True, text=True, timeout=60)
        version = found.stdout.strip() or version
    return LitellmServer(url=url, key=master_key, web=web, version=version)
