"""Background work under faults: a Celery worker SIGKILLed mid-batch, budget resets run twice at a
period boundary while requests are in flight. Spend comes from real requests through the gateway."""
from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tests.conftest import start_gateway
from tests.hardening.conftest import CeleryWorker, worker_env
from tests.hardening.test_faults_links import Load, _models

pytestmark = pytest.mark.django_db(transaction=True)


def test_celery_worker_killed_mid_batch_records_each_request_once(own_redis, make_key, fake_provider,
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


def test_budget_reset_run_twice_at_the_period_boundary_with_requests_in_flight(redis_client, make_key,
                                                                              fake_provider, django_db_setup):
    from billing.models import SpendLog
    from billing.queue import drain
    from billing.tasks import budget_reset

    key, row = make_key(key_alias="reset", max_budget=Decimal("1000"), budget_duration="1h")
    type(row).objects.filter(pk=row.pk).update(budget_reset_at=timezone.now() + timedelta(seconds=3))
    server = start_gateway({"model_list": _models(fake_provider.url)})
    draining = threading.Event()
    draining.set()
    stop = threading.Event()

    def drainer():
        import redis

        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        try:
            while not stop.is_set():
                if draining.is_set():
                    drain(client=client, max_seconds=0.3)
                time.sleep(0.05)
        finally:
            client.close()
            from django.db import connection

            connection.close()

    thread = threading.Thread(target=drainer, daemon=True)
    results: list[int] = []

    def reset_once() -> None:
        from django.db import connection

        try:
            results.append(budget_reset())        # the Celery task's body: how many budgets it reset
        finally:
            connection.close()

    try:
        thread.start()
        with Load(server.url, key, threads=3) as load:
            while timezone.now() < type(row).objects.get(pk=row.pk).budget_reset_at + timedelta(milliseconds=200):
                time.sleep(0.1)
            # The period is over. Draining pauses so the spend booked before the reset is known
            # exactly; requests keep arriving (their events wait in the stream).
            draining.clear()
            time.sleep(0.5)
            before_ids = set(SpendLog.objects.filter(key_id=row.pk).values_list("request_id", flat=True))
            racers = [threading.Thread(target=reset_once) for _ in range(2)]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join(timeout=60)
            draining.set()
            time.sleep(1.5)
            reset_once()                                # later the same period: nothing to reset
            time.sleep(1)
    finally:
        stop.set()
        thread.join(timeout=30)
        server.stop()
    drain(client=redis_client, max_seconds=30)
    served = {rid for _, status, rid, _ in load.results if status == 200}
    assert served and {s for _, s, _, _ in load.results} == {200}
    rows = SpendLog.objects.filter(key_id=row.pk)
    ids = list(rows.values_list("request_id", flat=True))
    assert len(ids) == len(set(ids)) and set(ids) == served          # no lost or doubled spend rows
    assert sorted(results) == [0, 0, 1], results                        # one reset for the period
    row.refresh_from_db()
    after_reset = sum((r.cost for r in rows if r.request_id not in before_ids), Decimal(0))
    assert before_ids and after_reset > 0
    assert row.spend == after_reset                                   # every cost after the reset counted, once
    assert timedelta(minutes=59) < row.budget_reset_at - timezone.now() <= timedelta(hours=1)
