"""A real llmur server (llmur-proxy subprocess, one or two workers) with a routing config of the test's.

The server uses the test database pytest-django created (so it exists and is migrated) and the
Redis of the test run; it is called with the master key only, so it needs no rows. Spend events it
records go to that Redis, where a test can drain them into SpendLog.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from tests.conftest import ROOT, free_port, wait_for_http

MASTER_KEY = "sk-route-test-master-0123456789"
LLMUR_PROXY = str(Path(sys.executable).parent / "llmur-proxy")


class Answer:
    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def deployment(self) -> str | None:
        return self.headers.get("x-llmur-model-deployment")


class Gateway:
    """A running llmur-proxy with the given config; post() sends a request as a client would."""

    def __init__(self, config: dict, tmp: Path, database_url: str, workers: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = tmp / "llmur.yaml"
        path.write_text(yaml.safe_dump({"master_keys": [MASTER_KEY], "log_level": "warning", **config}))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "PYTHONPATH": str(ROOT),
               "LLMUR_VAR_DIR": str(tmp / "var"), "DATABASE_URL": database_url,
               "REDIS_URL": os.environ["REDIS_URL"]}
        # Output goes to a file: a pipe nobody reads fills up and blocks the server's logging.
        self.log = tmp / "server.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [LLMUR_PROXY, "--configuration", str(path), "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(workers)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            wait_for_http(f"{self.url}/health/liveliness", timeout=60, process=self.process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{self.log.read_text()}") from None

    def request(self, method: str, path: str, body: dict | None = None, key: str = MASTER_KEY,
                headers: dict | None = None) -> Answer:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.headers, exc.read())

    def chat(self, model: str, content: str | None = None, **extra) -> Answer:
        """A chat completion; the default content is unique, so the response cache never answers it."""
        headers = extra.pop("headers", None)
        content = content if content is not None else f"hello {uuid.uuid4().hex}"
        return self.request("POST", "/v1/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": content}], **extra}, headers=headers)

    def stop(self) -> str:
        """Stop the server and its workers; returns what it printed."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        return self.log.read_text()


def _test_database_url() -> str:
    from django.db import connection

    url = urlsplit(os.environ["DATABASE_URL"])
    if not url.scheme.startswith(("postgres", "mysql", "mariadb")):
        pytest.skip("the routing server tests run on PostgreSQL or MySQL (scripts/test's first run)")
    return urlunsplit(url._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.fixture(scope="module")
def start_router_gateway(tmp_path_factory, django_db_setup):
    """Start llmur-proxy with a config; every server started is stopped at the end of the module."""
    if not os.environ.get("REDIS_URL") or not os.environ.get("DATABASE_URL"):
        pytest.skip("needs DATABASE_URL and REDIS_URL (scripts/test sets them)")
    database_url = _test_database_url()
    started: list[Gateway] = []

    def start(config: dict, workers: int = 1) -> Gateway:
        gateway = Gateway(config, tmp_path_factory.mktemp("gateway"), database_url, workers)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        output = gateway.stop()
        if os.environ.get("LLMUR_TEST_SERVER_OUTPUT"):
            print(output)


def deployment(name: str, upstream_model: str, upstream, group: str, **params) -> dict:
    """A model_list entry pointing at the mock upstream, with a fixed id (the response header's value)."""
    return {"model_name": group, "model_info": {"id": name},
            "litellm_params": {"model": f"openai/{upstream_model}", "api_base": upstream.url + "/v1",
                               "api_key": "sk-upstream-test", **params}}
