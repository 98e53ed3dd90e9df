"""Background work under faults: a Celery worker SIGKILLed mid-batch, budget resets run twice at a
period boundary while requests are in flight. Spend comes from real requests through the gateway."""
from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Self

import pytest
from django.utils import timezone

from tests.conftest import start_gateway, wait_until
from tests.factories import make_key
from tests.hardening.conftest import CeleryWorker, worker_env
from tests.hardening.test_faults_links import Load, _models

pytestmark = [pytest.mark.serial, pytest.mark.django_db(transaction=True)]


def test_celery_worker_killed_mid_batch_records_each_request_once(own_redis, fake_provider,
                                                                  django_db_setup, tmp_path):
    import asyncio

    from billing.connections import STREAM
    from billing.models import SpendLog
    from tests.hardening.test_faults_basic import _burst

    key, row = make_key(key_alias="celery-kill")
    server = start_gateway({"model_list": _models(fake_provider.url)}, env={"REDIS_URL": own_redis.url})
    try:
        bodies = [{"model": "priced", "messages": [{"role": "user", "content": f"n {i}"}], "max_tokens": 2}
                  for i in range(400)]
        results = []
        for start in range(0, len(bodies), 200):
            results += asyncio.run(_burst(server.url, key, bodies[start:start + 200]))
    finally:
        server.stop()
    served = {rid for status, rid, _ in results if status == 200}
    assert len(served) == 400
    client = own_redis.client()
    assert client.xlen(STREAM) == 400
    env = worker_env(own_redis.url, tmp_path / "worker", LLMUR_SPEND_DRAIN_BATCH="10",
                     LLMUR_SPEND_CLAIM_IDLE_MS="500")
    worker = CeleryWorker(env, tmp_path / "worker.log")
    from llmur.celery import app

    def send_drain():
        with app.connection_for_write(own_redis.url) as connection:
            app.send_task("billing.spend_drain", kwargs={"max_seconds": 60}, connection=connection)

    try:
        worker.start()
        send_drain()
        deadline = time.monotonic() + 60
        while SpendLog.objects.filter(key_id=row.pk).count() < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        worker.kill()                                  # SIGKILL mid-drain: a batch is read but not acked
        at_kill = SpendLog.objects.filter(key_id=row.pk).count()
        assert 0 < at_kill < 400
        pending = client.xpending("llmur:spend:events", "llmur-spend")["pending"]
        worker.start()
        send_drain()                                   # the task the killed worker held is redelivered too
        deadline = time.monotonic() + 60
        while SpendLog.objects.filter(key_id=row.pk).count() < 400 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        worker.stop()
    ids = list(SpendLog.objects.filter(key_id=row.pk).values_list("request_id", flat=True))
    assert len(ids) == len(set(ids)) == 400 and set(ids) == served, (len(ids), pending, worker.output()[-2000:])
    row.refresh_from_db()
    assert row.spend == sum(SpendLog.objects.filter(key_id=row.pk).values_list("cost", flat=True), Decimal(0))


class PausableDrainer:
    """Drains the spend stream in a thread, as a Celery worker would, until paused or stopped.

    pause() returns only once no drain is running and none will start, so what is booked at that
    moment stays booked until resume().
    """

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._lock = threading.Lock()            # held for each drain; pause() takes it to clear the flag
        self._allowed = threading.Event()
        self._allowed.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import redis
        from django.db import connection

        from billing.queue import drain

        client = redis.Redis.from_url(self._redis_url)
        try:
            while not self._stop.is_set():
                with self._lock:
                    if self._allowed.is_set():
                        drain(client=client, max_seconds=0.3)
                time.sleep(0.02)
        finally:
            client.close()
            connection.close()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def pause(self) -> None:
        with self._lock:
            self._allowed.clear()

    def resume(self) -> None:
        self._allowed.set()


def test_budget_reset_run_twice_at_the_period_boundary_with_requests_in_flight(redis_client,
                                                                              fake_provider, django_db_setup):
    from billing.models import SpendLog
    from billing.queue import drain
    from billing.tasks import budget_reset

    key, row = make_key(key_alias="reset", max_budget=Decimal(1000), budget_duration="1h",
                        budget_reset_at=timezone.now() + timedelta(hours=1))
    this_key = type(row).objects.filter(pk=row.pk)
    rows = SpendLog.objects.filter(key_id=row.pk)
    results: list[int] = []

    def reset_once() -> None:
        from django.db import connection

        try:
            results.append(budget_reset())        # the Celery task's body: how many budgets it reset
        finally:
            connection.close()

    server = start_gateway({"model_list": _models(fake_provider.url)})
    try:
        with PausableDrainer(os.environ["REDIS_URL"]) as drainer, Load(server.url, key, threads=3) as load:
            wait_until(lambda: rows.count() >= 10, what="spend booked in the period about to end")
            # Draining pauses so the spend booked before the reset is known exactly; requests keep
            # arriving (their events wait in the stream).
            drainer.pause()
            before_ids = set(rows.values_list("request_id", flat=True))
            # The period ends now: time is driven by moving the reset time into the past, not waited for.
            this_key.update(budget_reset_at=timezone.now() - timedelta(seconds=1))
            answered = len(load.results)
            racers = [threading.Thread(target=reset_once) for _ in range(2)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join(timeout=60)
            wait_until(lambda: len(load.results) >= answered + 10, what="requests answered after the reset")
            drainer.resume()
            wait_until(lambda: rows.count() >= len(before_ids) + 10, what="spend booked after the reset")
            reset_once()                                # later the same period: nothing to reset
    finally:
        server.stop()                                   # settles what was in flight into the stream
    drain(client=redis_client, max_seconds=30)
    served = {rid for _, status, rid, _ in load.results if status == 200}
    assert {s for _, s, _, _ in load.results} == {200}
    ids = list(rows.values_list("request_id", flat=True))
    assert len(ids) == len(set(ids)) and set(ids) == served          # no lost or doubled spend rows
    assert sorted(results) == [0, 0, 1], results                        # one reset for the period
    row.refresh_from_db()
    after_reset = sum((r.cost for r in rows if r.request_id not in before_ids), Decimal(0))
    assert len(before_ids) >= 10 and after_reset > 0
    assert row.spend == after_reset                                   # every cost after the reset counted, once
    assert timedelta(minutes=59) < row.budget_reset_at - timezone.now() <= timedelta(hours=1)
