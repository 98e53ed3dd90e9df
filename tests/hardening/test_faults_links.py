"""Broken links, through the TCP fault proxy: Redis cut mid-load (fail_open and fail_closed) and
PostgreSQL cut for 30 s mid-load, with a test-owned redis-server and Celery worker."""
from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from decimal import Decimal
from urllib.parse import urlsplit

import pytest

from tests.conftest import start_gateway, wait_until
from tests.factories import make_key
from tests.hardening.faultproxy import FaultProxy

pytestmark = [pytest.mark.serial, pytest.mark.django_db(transaction=True)]


def _models(upstream_url: str) -> list[dict]:
    return [{"model_name": "priced", "litellm_params": {"model": "openai/mock-gpt", "api_base": f"{upstream_url}/v1"},
             "model_info": {"input_cost_per_token": "0.000001", "output_cost_per_token": "0.000002"}}]


def _chat(url: str, key: str, i: int = 0, stream: bool = False) -> tuple[int, str, dict | str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        body = {"model": "priced", "messages": [{"role": "user", "content": f"request {i}"}], "max_tokens": 4}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body),
                     headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
        response = conn.getresponse()
        raw = response.read().decode()
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw
        return response.status, response.getheader("x-request-id") or "", data
    finally:
        conn.close()


class Load:
    """Client threads sending requests in a loop until stopped; every answer recorded with its phase."""

    def __init__(self, url: str, key: str, threads: int = 4):
        self.url, self.key = url, key
        self.phase = "before"
        self.results: list[tuple[str, int, str, object]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(threads)]

    def _loop(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            phase = self.phase
            status, request_id, body = _chat(self.url, self.key, n * 1_000_000 + i, stream=i % 3 == 0)
            # A request the phase changed under belongs to neither phase.
            self.results.append((phase if self.phase == phase else "transition", status, request_id, body))
            i += 1
            time.sleep(0.01)

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)

    def statuses(self, phase: str) -> list[int]:
        return [status for p, status, _, _ in self.results if p == phase]


def _metrics(server) -> str:
    request = urllib.request.Request(f"{server.url}/metrics", headers={"authorization": f"Bearer {server.master_key}"})
    return urllib.request.urlopen(request, timeout=30).read().decode()


def _metric_sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _drain(redis_url: str) -> None:
    import redis

    from billing.queue import drain

    client = redis.Redis.from_url(redis_url)
    try:
        drain(client=client, max_seconds=60)
    finally:
        client.close()


def _burst_statuses(url: str, key: str, n: int) -> list[int]:
    out: list[int] = []
    threads = [threading.Thread(target=lambda i=i: out.append(_chat(url, key, i)[0])) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return out


@pytest.mark.parametrize("policy", ["fail_open", "fail_closed"])
def test_redis_cut_mid_load_then_back(policy, own_redis, fake_provider, django_db_setup):
    from billing.models import SpendLog

    proxy = FaultProxy(own_redis.port)
    redis_url = f"redis://127.0.0.1:{proxy.port}/0"
    load_key, load_row = make_key(key_alias="load", max_budget=Decimal("100"))
    outage_key, _ = make_key(key_alias="outage-rpm", rpm_limit=20)
    after_key, _ = make_key(key_alias="after-rpm", rpm_limit=10)
    server = start_gateway({"model_list": _models(fake_provider.url), "cache_failure_policy": policy,
                            "log_level": "info"}, workers=2, env={"REDIS_URL": redis_url})
    try:
        with Load(server.url, load_key) as load:
            wait_until(lambda: len(load.statuses("before")) >= 5, what="answers before the outage")
            # A request labelled "outage" started after the cut; the ones around it (labelled
            # "cutting" or "transition") count for neither side.
            load.phase = "cutting"
            proxy.refuse(True)                       # every open connection dropped, new ones refused
            load.phase = "outage"
            wait_until(lambda: len(load.statuses("outage")) >= 5, what="answers during the outage")
            # Limits meanwhile: fail_open divides rpm 20 between the 2 workers (10 each), fail_closed refuses.
            outage = _burst_statuses(server.url, outage_key, 30)
            metrics_during = _metrics(server)
            load.phase = "recovering"
            proxy.heal()
            time.sleep(3)                            # each worker retries Redis 1 s after its last failure
            load.phase = "after"
            wait_until(lambda: len(load.statuses("after")) >= 5, what="answers after the outage")
        after = _burst_statuses(server.url, after_key, 15)
    finally:
        server.stop()
        proxy.close()
    log = server.output()
    all_statuses = [status for _, status, _, _ in load.results]
    assert 500 not in all_statuses and 500 not in outage and "Traceback" not in log, log[-3000:]
    assert set(load.statuses("before")) == {200} and set(load.statuses("after")) == {200}, \
        [(p, s) for p, s, _, _ in load.results if s != 200 and p != "outage"]
    assert load.statuses("outage"), "no request was sent during the outage"
    if policy == "fail_open":
        assert set(load.statuses("outage")) == {200}
        assert 10 <= outage.count(200) <= 20 and set(outage) <= {200, 429}, outage
        assert "redis unreachable" in log and "limits per process" in log
    else:
        assert set(load.statuses("outage")) == {503}
        assert set(outage) == {503}
        assert "redis unreachable" in log and "refusing requests (fail_closed)" in log
        body = next(b for p, s, _, b in load.results if s == 503 and isinstance(b, dict))
        assert body["error"]["type"] == "service_unavailable"
    assert _metric_sum(metrics_during, "llmur_limits_degraded_total") > 0
    assert _metric_sum(metrics_during, "llmur_dependency_up", dependency="cache") == 0
    assert "redis reachable again" in log
    # Exact limits again once Redis is back: rpm 10 across both workers admits exactly 10.
    assert sorted(after) == [200] * 10 + [429] * 5
    # Every answered request is recorded exactly once (direct to the database during the outage,
    # through the stream otherwise).
    _drain(own_redis.url)
    served = sorted(rid for _, status, rid, _ in load.results if status == 200)
    rows = SpendLog.objects.filter(key_id=load_row.pk)
    assert sorted(rows.values_list("request_id", flat=True)) == served


def test_postgres_cut_for_30_seconds_mid_load(own_redis, fake_provider, django_db_setup, tmp_path):
    """Known keys keep working from cache; spend waits in Redis and lands exactly once afterwards."""
    from django.db import connection

    from billing.models import SpendLog
    from tests.conftest import database_url_for_subprocess
    from tests.hardening.conftest import CeleryWorker, worker_env

    db = connection.settings_dict
    proxy = FaultProxy(int(db.get("PORT") or 5432), db.get("HOST") or "127.0.0.1")
    through_proxy = database_url_for_subprocess().replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
    assert str(proxy.port) in through_proxy
    known, known_row = make_key(key_alias="known")
    stranger, _ = make_key(key_alias="stranger")
    server = start_gateway({"model_list": _models(fake_provider.url), "log_level": "info"},
                           env={"REDIS_URL": own_redis.url, "DATABASE_URL": through_proxy})
    worker = CeleryWorker(worker_env(own_redis.url, tmp_path / "worker", through_proxy,
                                     LLMUR_SPEND_CLAIM_IDLE_MS="1000"), tmp_path / "worker.log")
    try:
        worker_args = ["-B", "-s", str(tmp_path / "beat-schedule")]
        worker.start(extra=worker_args)
        with Load(server.url, known, threads=3) as load:
            wait_until(lambda: len(load.statuses("before")) >= 3, what="answers before the cut")
            load.phase = "outage"
            proxy.refuse(True)
            time.sleep(11)            # past the 10 s in-process cache: the key now comes from Redis
            stranger_status, _, stranger_body = _chat(server.url, stranger)
            time.sleep(19)
            load.phase = "recovering"
            proxy.heal()
            wait_until(lambda: len(load.statuses("recovering")) >= 3, what="answers once the database is back")
            load.phase = "after"
            wait_until(lambda: len(load.statuses("after")) >= 3, what="answers after the recovery")
        served = {rid for _, status, rid, _ in load.results if status == 200}
        deadline = time.monotonic() + 40
        while SpendLog.objects.filter(key_id=known_row.pk).count() < len(served) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        worker.stop()
        server.stop()
        proxy.close()
    log = server.output()
    statuses = [status for _, status, _, _ in load.results]
    assert load.statuses("outage") and set(load.statuses("outage")) == {200}, set(statuses)
    assert set(statuses) == {200}
    # A key the gateway has never seen cannot be checked without the database: a clean 503, not a 500.
    assert stranger_status == 503, stranger_body
    assert "cannot check this key" in stranger_body["error"]["message"]
    # (The key lookup that found the database down logs its exception: that is the log line saying so.)
    assert "status=500" not in log and "Internal error" not in log
    rows = SpendLog.objects.filter(key_id=known_row.pk)
    ids = list(rows.values_list("request_id", flat=True))
    assert len(ids) == len(set(ids)) == len(served), (len(ids), len(set(ids)), len(served), worker.output()[-2000:])
    assert set(ids) == served
