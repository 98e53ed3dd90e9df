"""Shared fixtures: real services (the database under test, Redis) and the shared mock upstream.

The database comes from DATABASE_URL (scripts/test runs the suite on PostgreSQL and the
db_matrix tests again on SQLite and MariaDB). Redis, when REDIS_URL is set, is real too; only
the model provider is faked, by ../shared/bench/mock_upstream.py.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MOCK_UPSTREAM = ROOT.parent / "shared" / "bench" / "mock_upstream.py"


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


class MockUpstream:
    """Handle on a running mock_upstream.py: its base URL and its /stats counters."""

    def __init__(self, port: int, process: subprocess.Popen):
        self.port, self.process = port, process
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as response:
            return json.load(response)

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/stats/reset", data=b"{}", method="POST")
        urllib.request.urlopen(request, timeout=5).read()


def start_mock_upstream(*extra_args: str) -> MockUpstream:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(MOCK_UPSTREAM), "--port", str(port), *extra_args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_http(f"http://127.0.0.1:{port}/health", process=process)
    return MockUpstream(port, process)


@pytest.fixture(scope="session")
def mock_upstream():
    """One mock provider for the whole session; tests reset its counters when they count."""
    upstream = start_mock_upstream()
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
