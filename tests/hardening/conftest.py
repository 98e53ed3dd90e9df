"""Fixtures for the attack and fault suite: keys in the database the server reads, a capture server,
test-owned redis-server and Celery worker processes, and plain HTTP helpers."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, database_url_for_subprocess, free_port


class CaptureServer:
    """A plain TCP listener that counts every connection made to it (and what was sent)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(0.5)
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            self.connections.append(data)
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def capture_server():
    server = CaptureServer()
    yield server
    server.close()


class OwnRedis:
    """A redis-server owned by one test, which it may kill and start again on the same port."""

    def __init__(self, tmp_path: Path, *args: str):
        self.port, self.dir, self.process = free_port(), tmp_path, None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        # redis-server options; by default nothing is kept on disk.
        self.args = args or ("--save", "", "--appendonly", "no")

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", *self.args,
             "--daemonize", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                client.close()
                return
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("test redis-server did not start")

    def client(self):
        import redis

        return redis.Redis(port=self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.stop()


class CeleryWorker:
    """`celery -A llmur.celery worker` as a subprocess in its own session, so a test can SIGKILL it whole."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env, self.log_path, self.process = env, log, None

    def start(self, extra: list[str] | None = None) -> None:
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "llmur.celery", "worker", "-P", "solo", "--without-heartbeat",
                 "--without-mingle", "--without-gossip", "-l", "info", *(extra or [])],
                cwd=str(ROOT), env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_env(redis_url: str, var_dir: Path, database_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LLMUR_CONFIGURATION", "LLMUR_MASTER_KEY")}
    env.update({"DATABASE_URL": database_url or database_url_for_subprocess(), "REDIS_URL": redis_url,
                "LLMUR_VAR_DIR": str(var_dir), "LLMUR_CONFIGURATION": ""}, **extra)
    return env


def rss_kib(pid: int) -> int:
    """Resident memory of a process (KiB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its children (llmur-proxy may run the server in a child)."""
    total = rss_kib(pid)
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        for child in children.read_text().split():
            try:
                total += tree_rss_kib(int(child))
            except (OSError, RuntimeError):
                pass
    return total


# The management API's world (organizations, teams, a person per role), and `town`, which extends it.
from tests.accounts.api.conftest import admin_api, master_key, world  # noqa: E402,F401
from tests.hardening.authorization_town import town  # noqa: E402,F401

