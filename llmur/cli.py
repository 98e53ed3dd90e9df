"""`llmur-proxy`: validate the config, reach the services, migrate, then serve the ASGI app.

Django and llmur.startup (which needs Django's apps) are imported inside the functions: a bad
config or argument is reported in one line before Django is set up.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

from llmur.config import CLI_DATABASE_URL, ConfigError


def run_guarded(func: Callable[..., Any], *args: Any) -> Any:
    """Run an entry point, turning config and start-up failures into one line and an exit status."""
    from django.db import DatabaseError

    from llmur.startup import ServiceUnreachable

    try:
        return func(*args)
    except (ConfigError, ServiceUnreachable) as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except DatabaseError as exc:
        # manage.py (e.g. the migrate job of a deployment) against a database that is down or
        # refuses us: the same one line as llmur-proxy gives, not a driver traceback.
        from django.conf import settings

        from llmur.startup import _reason

        db = settings.LLMUR.database
        print(f"llmur: database {db.engine} at {db.address}: {_reason(exc)}", file=sys.stderr)
        raise SystemExit(ServiceUnreachable.exit_code) from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one `llmur: config error` line and exit 2, like a bad file."""

    def error(self, message: str) -> None:  # type: ignore[override]
        flag = next((word.strip("'\"") for word in message.split() if word.strip("'\"").startswith("-")), "")
        raise ConfigError("command line", flag.rstrip(":"), f"{message} (see llmur-proxy --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="llmur-proxy", description="Run the llmur LLM gateway.")
    parser.add_argument("-c", "--configuration", metavar="FILE",
                        help="YAML configuration file (default: $LLMUR_CONFIGURATION, else the embedded defaults)")
    parser.add_argument("--host", help="bind address (overrides host in the file)")
    parser.add_argument("--port", type=int, help="bind port (overrides port in the file)")
    parser.add_argument("--workers", type=int, help="worker processes; more than 1 runs gunicorn with uvicorn workers")
    parser.add_argument("--database-url", metavar="URL", help="database URL (overrides the file and DATABASE_URL)")
    parser.add_argument("--no-migrate", action="store_true", help="do not run migrations at start, whatever auto_migrate says")
    return parser


def _validate_args(args: argparse.Namespace, source: str = "command line") -> None:
    if args.port is not None and not 1 <= args.port <= 65535:
        raise ConfigError(source, "--port", "out of range (expected 1..65535)")
    if args.workers is not None and not 1 <= args.workers <= 256:
        raise ConfigError(source, "--workers", "out of range (expected 1..256)")


def _banner(settings: Any, host: str, port: int, workers: int, new_master_key: str | None) -> None:
    llmur = settings.LLMUR
    lines = [
        f"llmur {__import__('llmur').__version__} serving on http://{host}:{port} ({workers} worker{'s' * (workers > 1)})",
        f"  config:   {llmur.source}",
        f"  database: {llmur.database.engine} {llmur.database.address}",
        f"  cache:    {llmur.cache.address if llmur.cache.engine == 'local' else 'redis ' + llmur.cache.address}",
        f"  models:   {len(llmur.config.model_list)} deployment(s) from config",
        f"  data:     {llmur.var_dir}",
    ]
    if new_master_key:
        lines += [
            "",
            "  A master key was generated for this installation. It is shown once and stored only hashed:",
            f"    {new_master_key}",
            "  Set master_keys in a config file (or LLMUR_MASTER_KEY) to choose your own.",
        ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> None:
    # Everything this process writes under var/ (the SQLite file, the generated secret, the
    # migration lock) holds or guards secrets: keep it readable by this user only.
    os.umask(0o077)
    args = run_guarded(_parser().parse_args, argv)
    if args.configuration:
        os.environ["LLMUR_CONFIGURATION"] = os.path.abspath(args.configuration)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
        os.environ[CLI_DATABASE_URL] = "1"
    run_guarded(_serve, args)


def _check_listen(host: str, port: int) -> None:
    """Fail in one line before start-up work if the address cannot be bound (e.g. already in use)."""
    import socket

    from llmur.startup import ServiceUnreachable

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ServiceUnreachable(f"llmur: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _serve(args: argparse.Namespace) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")
    _validate_args(args)
    import django
    from django.conf import settings

    django.setup()
    from llmur import startup

    for warning in settings.LLMUR.warnings:
        print(f"llmur: config warning in {settings.LLMUR.source}: {warning}", file=sys.stderr, flush=True)
    _check_listen(args.host or settings.LLMUR.config.host, args.port or settings.LLMUR.config.port)
    new_master_key = startup.prepare(migrate_now=False if args.no_migrate else None)
    # Connections (and psycopg's pool threads) opened for start-up must not leak into the
    # server's event loop or, worse, be shared by forked gunicorn workers.
    startup.close_connections()
    config = settings.LLMUR.config
    host = args.host or config.host
    port = args.port or config.port
    workers = args.workers or config.workers
    # During a Redis outage each worker enforces limit ÷ workers (gateway/admission/local.py); --workers must
    # count there too, or the limits would be multiplied by the worker count. Forked workers inherit it.
    config.workers = workers
    _banner(settings, host, port, workers, new_master_key)
    if workers == 1:
        import uvicorn

        # X-Forwarded-For/-Proto are believed only from trusted_proxies (uvicorn's default trusts
        # 127.0.0.1, so any local peer could choose the client address the login throttle counts).
        uvicorn.run("llmur.asgi:application", host=host, port=port, loop="uvloop", http="httptools",
                    lifespan="on", access_log=False, log_level=config.python_log_level.lower(),
                    timeout_graceful_shutdown=10, proxy_headers=True, forwarded_allow_ips=list(config.trusted_proxies))
    else:
        from llmur.gunicorn_app import serve

        serve(host=host, port=port, workers=workers, log_level=config.python_log_level.lower(),
              trusted_proxies=config.trusted_proxies)


if __name__ == "__main__":
    main()
