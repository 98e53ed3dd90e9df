"""Fixtures of the roadmap features: a local webhook receiver, Celery workers, keys and teams."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, database_url_for_subprocess, free_port


class Receiver:
    """An HTTP server on a free port that records every POST and answers with `.status`."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self) -> list[tuple[dict[str, str], bytes]]:
        with self._lock:
            return list(self.requests)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.received()) < count:
            time.sleep(0.05)
        return self.received()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


class CeleryWorkers:
    """`celery -A llmur.celery worker` processes on the tests' database and Redis, with a config file of their own."""

    def __init__(self, config: dict, count: int):
        workdir = Path(tempfile.mkdtemp(prefix="llmur-roadmap-worker-"))
        self.config_path = workdir / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if k not in ("LLMUR_MASTER_KEY", "LITELLM_MASTER_KEY")}
        env.update({"DATABASE_URL": database_url_for_subprocess(), "LLMUR_CONFIGURATION": str(self.config_path),
                    "LLMUR_VAR_DIR": str(workdir / "var"), "PYTHONUNBUFFERED": "1"})
        self.logs = [workdir / f"worker-{i}.log" for i in range(count)]
        self.processes = []
        for index, log_path in enumerate(self.logs):
            with open(log_path, "w") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "llmur.celery", "worker", "-P", "solo", "-n", f"road{index}@%h",
                     "--without-heartbeat", "--without-mingle", "--without-gossip", "-l", "info"],
                    cwd=str(ROOT), env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self._wait_ready()

    def _wait_ready(self, timeout: float = 120.0) -> None:   # a safety net: Celery starts slowly on a loaded machine
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all("ready." in path.read_text(errors="replace") for path in self.logs):
                return
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("celery workers did not start:\n" + self.output())

    def output(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True)
