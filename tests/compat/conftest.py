"""A live llmur server for the compat tests, called over HTTP the way LiteLLM users' scripts call LiteLLM's proxy."""
from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import requests
from django.core.management import call_command

from tests.conftest import mock_model_list, start_gateway


@pytest.fixture(scope="package")
def server(django_db_setup, django_db_blocker, fake_provider):
    """mock-gpt priced (so spend moves) and in an access group, as LiteLLM's model_info.access_groups writes it."""
    models = mock_model_list(fake_provider.url)
    models[0]["model_info"] = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002,
                               "access_groups": ["beta-models"]}
    with django_db_blocker.unblock():
        gateway = start_gateway({"model_list": models, "router_settings": {"num_retries": 0}})
    yield gateway
    gateway.stop()


@dataclass
class Client:
    """JSON over HTTP with a bearer key, as LiteLLM's own scripts use requests."""

    base: str
    key: str

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return requests.post(f"{self.base}{path}", json=body or {}, headers=self._headers(), timeout=30)

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(f"{self.base}{path}", params=params, headers=self._headers(), timeout=30)

    def ok(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self.post(path, body) if method == "POST" else self.get(path, **(body or {}))
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


@pytest.fixture
def admin(server, transactional_db) -> Client:
    return Client(server.url, server.master_key)


@pytest.fixture
def as_key(server):
    return lambda key: Client(server.url, key)


def spend_settle(predicate, *, within: float = 20) -> None:
    """Play the Celery worker: drain the spend queue until `predicate()` holds."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "spend was not booked in time"
        call_command("process_spend", verbosity=0)
        time.sleep(0.1)
