"""GET /metrics: counts that add up across gunicorn workers, and who may read them."""
from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import chat_status, mock_model_list, start_gateway
from tests.factories import make_key

# The servers read the test database, so it must exist even when only these tests run.
pytestmark = pytest.mark.django_db(transaction=True)


def _get(url: str, key: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _samples(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _per_worker_requests(directory: Path) -> dict[str, float]:
    """Each worker's own llmur_requests_total, read from its multiprocess file alone."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(path, alone)
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=alone)
            counts[path.stem] = sum(s.value for m in registry.collect() for s in m.samples
                                    if s.name == "llmur_requests_total" and s.labels.get("model") == "mock-slow")
    return counts


@pytest.fixture(scope="module")
def two_workers(django_db_setup, fake_provider):
    v1 = f"{fake_provider.url}/v1"
    models = mock_model_list(fake_provider.url) + [
        {"model_name": "mock-slow", "litellm_params": {"model": "openai/mock-slow-30", "api_base": v1}},
        # One failing and one healthy deployment: the failing one cools down after its first failure.
        {"model_name": "flaky", "litellm_params": {"model": "openai/mock-500", "api_base": v1},
         "model_info": {"id": "flaky-500"}},
        {"model_name": "flaky", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1},
         "model_info": {"id": "flaky-ok"}},
    ]
    server = start_gateway({"model_list": models, "metrics": {"allowed_ips": ["192.0.2.0/24"]},
                            "router_settings": {"allowed_fails": 0, "cooldown_time": 60}}, workers=2)
    yield server
    server.stop()


def test_metrics_under_two_workers_report_the_sum_of_both_workers_requests(two_workers):
    url, key = two_workers.url, two_workers.master_key
    directory = two_workers.config_path.parent / "var" / "prometheus" / str(two_workers.process.pid)
    sent = 0
    # Concurrent requests on fresh connections spread over both workers; keep going until both served some.
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(10):
            statuses = list(pool.map(lambda _: chat_status(url, key, "mock-slow"), range(16)))
            assert statuses == [200] * 16
            sent += 16
            busy = [count for count in _per_worker_requests(directory).values() if count]
            if len(busy) >= 2:
                break
    per_worker = _per_worker_requests(directory)
    assert len([c for c in per_worker.values() if c]) >= 2, per_worker
    sent_plain = 0
    for _ in range(5):
        assert chat_status(url, key) == 200
        sent_plain += 1

    # Whichever worker answers the scrape, it reports every worker's requests.
    for _ in range(6):
        status, text = _get(f"{url}/metrics", key)
        assert status == 200
        assert _samples(text, "llmur_requests_total", model="mock-slow", status="200") == sent
        assert _samples(text, "llmur_requests_total", model="mock-gpt", status="200") == sent_plain
        assert _samples(text, "llmur_request_duration_seconds_count", model="mock-slow") == sent
        assert _samples(text, "llmur_upstream_duration_seconds_count", model="mock-slow") == sent
        assert _samples(text, "llmur_tokens_total", model="mock-slow", direction="prompt") > 0
        assert _samples(text, "llmur_requests_in_flight") == 0
        assert _samples(text, "llmur_dependency_up", dependency="database") == 1
        assert _samples(text, "llmur_db_pool_connections", state="open") >= 1  # the answering worker's pool


def test_spend_queue_and_cooldowns_are_reported_at_scrape_time(two_workers, redis_url):
    url, key = two_workers.url, two_workers.master_key
    for _ in range(20):
        assert chat_status(url, key, "flaky") == 200  # retried on the healthy deployment
        text = _get(f"{url}/metrics", key)[1]
        if _samples(text, "llmur_deployment_cooldown_seconds", deployment="flaky-500"):
            break
    assert 0 < _samples(text, "llmur_deployment_cooldown_seconds", deployment="flaky-500") <= 60
    assert _samples(text, "llmur_deployment_cooldown_seconds", deployment="flaky-ok") == 0
    # No Celery worker runs here, so the spend events of these requests are still queued.
    assert _samples(text, "llmur_spend_queue_length") >= 1
    assert _samples(text, "llmur_spend_queue_lag_seconds") > 0


def test_a_streamed_request_records_time_to_first_token(two_workers):
    url, key = two_workers.url, two_workers.master_key
    before = _samples(_get(f"{url}/metrics", key)[1], "llmur_time_to_first_token_seconds_count", model="mock-gpt")
    assert chat_status(url, key, stream=True) == 200
    after = _samples(_get(f"{url}/metrics", key)[1], "llmur_time_to_first_token_seconds_count", model="mock-gpt")
    assert after == before + 1


def test_rejected_requests_are_counted_by_status(two_workers):
    url, key = two_workers.url, two_workers.master_key
    before = _samples(_get(f"{url}/metrics", key)[1], "llmur_requests_total", status="401")
    assert chat_status(url, "sk-not-a-key") == 401
    assert _samples(_get(f"{url}/metrics", key)[1], "llmur_requests_total", status="401") == before + 1


@pytest.fixture
def virtual_key(transactional_db) -> str:
    return make_key().plaintext


def test_metrics_need_the_master_key_from_outside_the_allow_list(two_workers, virtual_key):
    status, body = _get(f"{two_workers.url}/metrics")
    assert status == 401 and json.loads(body)["error"]["type"]
    status, body = _get(f"{two_workers.url}/metrics", virtual_key)
    assert status == 403
    assert json.loads(body)["error"]["message"] == ("GET /metrics needs the master key (or a client address "
                                                    "in metrics.allowed_ips).")
    assert virtual_key not in body


def test_an_allowed_address_reads_metrics_without_a_key(django_db_setup, fake_provider):
    server = start_gateway({"model_list": mock_model_list(fake_provider.url),
                            "metrics": {"allowed_ips": ["127.0.0.0/8"]}})
    try:
        status, text = _get(f"{server.url}/metrics")
        assert status == 200 and "llmur_requests_in_flight" in text
    finally:
        server.stop()


def test_a_dead_workers_live_gauge_leaves_the_metrics(two_workers):
    import os
    import signal
    import time

    directory = two_workers.config_path.parent / "var" / "prometheus" / str(two_workers.process.pid)
    live = sorted(directory.glob("gauge_livesum_*.db"))
    assert live, list(directory.iterdir())
    victim = int(live[0].stem.rsplit("_", 1)[1])
    os.kill(victim, signal.SIGKILL)  # gunicorn starts another worker and calls child_exit for this one
    deadline = time.monotonic() + 15
    while live[0].exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not live[0].exists()
    assert _get(f"{two_workers.url}/metrics", two_workers.master_key)[0] == 200
