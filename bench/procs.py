"""The processes a benchmark run owns: the fake provider, llmur (gunicorn + Celery), LiteLLM's proxy.

Every process is started pinned to a core set with taskset (when the machine has two or more
cores), its output goes to a log file under the run's work directory, and it is stopped by its own
process group at the end of the run, whatever happened in between.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """A run cannot go on; the text says what failed and what to do about it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cores:
    """Which cores the server under test gets and which the load generator, mock and workers share."""

    server: list[int]
    load: list[int]

    @classmethod
    def plan(cls) -> "Cores":
        available = sorted(os.sched_getaffinity(0))
        if len(available) >= 2:
            return cls(server=[available[-1]], load=available[:-1])
        return cls(server=[], load=[])

    @property
    def pinned(self) -> bool:
        return bool(self.server)

    def wrap(self, command: list[str], *, role: str) -> list[str]:
        """The command prefixed with taskset for the role's cores ("server" or "load")."""
        cores = self.server if role == "server" else self.load
        if not cores or not shutil.which("taskset"):
            return command
        return ["taskset", "-c", ",".join(map(str, cores)), *command]

    def describe(self) -> dict:
        return {"pinned": self.pinned, "server_cores": self.server, "load_cores": self.load,
                "cpu_count": os.cpu_count()}


@dataclass
class Managed:
    """One started process: its name, Popen handle and log file."""

    name: str
    process: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the process group, then SIGKILL what is left after the timeout."""
        if not self.alive():
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)


def start(name: str, command: list[str], *, workdir: Path, env: dict | None = None,
          cwd: Path = ROOT) -> Managed:
    """Start a command in its own process group, output to workdir/<name>.log."""
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                               start_new_session=True)
    log.close()
    return Managed(name, process, log_path)


def wait_http(url: str, proc: Managed, *, timeout: float = 60, headers: dict | None = None) -> None:
    """Poll url until it answers with any HTTP status, or fail with the process's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with status {proc.process.returncode} before {url} answered; "
                             f"last lines of {proc.log_path}:\n{proc.log_tail()}")
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2).read()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{proc.name} did not answer {url} within {timeout:.0f} s; last lines of {proc.log_path}:\n"
                     f"{proc.log_tail()}")


def start_mock(cores: Cores, workdir: Path) -> Managed:
    """The project's fake provider (python -m fakeprovider), on the load core."""
    port = free_port()
    proc = start("mock", cores.wrap([sys.executable, "-m", "fakeprovider", "--host", "127.0.0.1",
                                     "--port", str(port)], role="load"), workdir=workdir)
    proc.extra["url"] = f"http://127.0.0.1:{port}"
    wait_http(f"{proc.extra['url']}/health", proc, timeout=20)
    return proc


def mock_stats(url: str) -> dict:
    import json

    with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:
        return json.load(response)


def mock_reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/stats/reset", data=b"{}", method="POST")
    urllib.request.urlopen(request, timeout=5).read()


def serving_process(pid: int) -> psutil.Process:
    """The process that handles requests: the only child of a gunicorn master, else pid itself."""
    parent = psutil.Process(pid)
    children = [child for child in parent.children(recursive=True) if "python" in child.name().lower()
                or "gunicorn" in " ".join(child.cmdline()) or "uvicorn" in " ".join(child.cmdline())]
    if not children:
        return parent
    return max(children, key=lambda child: child.memory_info().rss)


def rss_mb(pid: int) -> float | None:
    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.Error:
        return None


def cpu_seconds(process: psutil.Process | None) -> float:
    """User plus system CPU seconds the process has used so far (0 when it is gone)."""
    if process is None:
        return 0.0
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def start_redis(cores: Cores, workdir: Path) -> Managed:
    """A private redis-server on a free port, on the load cores, persisting as production must
    (appendonly yes, fsync every second): its INFO counters then belong to this run alone."""
    binary = shutil.which("redis-server")
    if not binary:
        raise BenchError("redis-server is not installed: run `apt-get install -y redis-server` (Debian/Ubuntu)")
    port = free_port()
    data = workdir / "redis"
    data.mkdir(exist_ok=True)
    proc = start("redis", cores.wrap([binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
                                      "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
                                     role="load"), workdir=workdir)
    proc.extra["url"] = f"redis://127.0.0.1:{port}/1"
    proc.extra["port"] = port
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.stop()
    raise BenchError(f"redis-server did not answer on port {port}; last lines of {proc.log_path}:\n{proc.log_tail()}")
