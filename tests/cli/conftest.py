"""Helpers to run llmur's commands as a user does: a subprocess with a clean environment."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
LLMUR_PROXY = str(BIN / "llmur-proxy")
@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """A minimal environment (nothing from the developer's shell) with a private var/ directory."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "LLMUR_VAR_DIR": str(tmp_path / "var"), "PYTHONPATH": str(ROOT)}
    return env


def run(args: list[str], env: dict[str, str], cwd: Path | str = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


class Server:
    """A llmur-proxy process in its own session, so stopping it stops its workers too."""

    def __init__(self, args: list[str], env: dict[str, str], port: int, cwd: Path | str = ROOT):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([LLMUR_PROXY, "--host", "127.0.0.1", "--port", str(port), *args], env=env,
                                        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self._output: str | None = None

    def stop(self) -> str:
        """Stop the server (and its workers) and return everything it printed."""
        if self._output is None:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self._output, _ = self.process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self._output, _ = self.process.communicate(timeout=10)
        return self._output


@pytest.fixture
def servers():
    started: list[Server] = []

    def start(args: list[str], env: dict[str, str], port: int, cwd: Path | str = ROOT) -> Server:
        server = Server(args, env, port, cwd)
        started.append(server)
        return server

    start.started = started  # type: ignore[attr-defined]
    yield start
    for server in started:
        server.stop()
