"""gunicorn with uvicorn workers, embedded so `llmur-proxy --workers N` needs no extra command line."""
from __future__ import annotations

from gunicorn.app.base import BaseApplication

from llmur.core import observability


class _Application(BaseApplication):
    def __init__(self, options: dict) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):  # pragma: no cover - gunicorn imports the app in each worker
        from llmur.asgi import application

        return application


def serve(*, host: str, port: int, workers: int, log_level: str, trusted_proxies: list[str]) -> None:
    _Application({
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "uvicorn_worker.UvicornWorker",
        "loglevel": log_level,
        "graceful_timeout": 10,
        "timeout": 120,
        "keepalive": 75,
        "accesslog": None,
        # Forwarded headers only from trusted_proxies ("" trusts none; gunicorn's default is 127.0.0.1).
        "forwarded_allow_ips": ",".join(trusted_proxies),
        "child_exit": _child_exit,
    }).run()


def _child_exit(server, worker) -> None:
    """A worker that exits takes its live gauges (requests in flight) out of /metrics (llmur/core/metrics.py)."""
    if observability.multiprocess:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
