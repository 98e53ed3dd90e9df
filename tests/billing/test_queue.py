"""The Redis spend stream: drained into SpendLog, acked only after commit, dead consumers' entries claimed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import orjson
import pytest

from tests.billing.conftest import spend_event
from tests.conftest import ROOT, database_url_for_subprocess
from tests.factories import make_key


def push(client, events):
    from billing.connections import STREAM

    pipe = client.pipeline(transaction=False)
    for event in events:
        pipe.xadd(STREAM, {"e": orjson.dumps(event)})
    pipe.execute()


@pytest.fixture
def stream(redis_client, monkeypatch):
    from llmur.core import redis as redis_registry

    redis_registry.forget()
    yield redis_client
    redis_registry.forget()


@pytest.mark.django_db
def test_drain_records_acks_and_deletes_and_ignores_duplicates(stream):
    from billing.connections import GROUP, STREAM
    from billing.models import SpendLog
    from billing.queue import drain

    key = make_key().row
    events = [spend_event(key=key, cost="0.01") for _ in range(30)]
    push(stream, events + events[:5])                   # five delivered twice
    assert drain(client=stream, batch=7) == 30
    assert SpendLog.objects.filter(key_id=key.pk).count() == 30
    key.refresh_from_db()
    assert key.spend == Decimal("0.30")
    assert stream.xlen(STREAM) == 0
    assert stream.xpending(STREAM, GROUP)["pending"] == 0


@pytest.mark.django_db
def test_entries_of_a_dead_consumer_are_claimed_and_recorded(stream, monkeypatch):
    from billing.connections import GROUP, STREAM
    from billing.models import SpendLog
    from billing.queue import drain, ensure_group

    key = make_key().row
    events = [spend_event(key=key) for _ in range(10)]
    push(stream, events)
    ensure_group(stream)
    stream.xreadgroup(GROUP, "worker-that-died", {STREAM: ">"}, count=10)   # delivered, never acked
    assert drain(client=stream, consumer="live") == 0                       # not idle long enough yet
    monkeypatch.setenv("LLMUR_SPEND_CLAIM_IDLE_MS", "0")
    assert drain(client=stream, consumer="live") == 10
    assert SpendLog.objects.filter(key_id=key.pk).count() == 10
    assert stream.xpending(STREAM, GROUP)["pending"] == 0


@pytest.mark.django_db
def test_a_failed_database_write_leaves_the_entries_pending(stream, monkeypatch):
    from billing import queue
    from billing.connections import GROUP, STREAM
    from billing.models import SpendLog

    key = make_key().row
    push(stream, [spend_event(key=key) for _ in range(4)])

    def database_down(**kwargs):
        raise RuntimeError("database unreachable")

    monkeypatch.setattr(queue, "spend_record_batch", database_down)
    with pytest.raises(RuntimeError):
        queue.drain(client=stream, consumer="w1")
    assert stream.xpending(STREAM, GROUP)["pending"] == 4 and stream.xlen(STREAM) == 4
    monkeypatch.undo()
    assert queue.drain(client=stream, consumer="w1") == 4                    # its own pending, retried
    assert SpendLog.objects.filter(key_id=key.pk).count() == 4


@pytest.mark.django_db
def test_unreadable_entries_go_to_the_dead_letter_stream(stream):
    from billing.connections import DEAD_LETTERS, STREAM
    from billing.queue import drain

    stream.xadd(STREAM, {"e": b"not json"})
    push(stream, [spend_event()])
    assert drain(client=stream) == 1
    assert stream.xlen(STREAM) == 0 and stream.xlen(DEAD_LETTERS) == 1


@pytest.mark.django_db
def test_process_spend_command_drains_resets_and_rolls_up(stream):
    from django.core.management import call_command

    from billing.models import DailySpend, SpendLog

    key = make_key().row
    push(stream, [spend_event(key=key, cost="0.02") for _ in range(3)])
    from io import StringIO

    out = StringIO()
    call_command("process_spend", stdout=out)
    assert "spend queue: 3 new SpendLog rows, 0 events left" in out.getvalue()
    assert "daily spend recomputed for 1 day(s)" in out.getvalue()
    assert SpendLog.objects.filter(key_id=key.pk).count() == 3
    assert DailySpend.objects.get(key_id=key.pk).cost == Decimal("0.06")


def _worker(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "llmur.celery", "worker", "-P", "solo", "--without-heartbeat",
         "--without-mingle", "--without-gossip", "-l", "warning"],
        cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


@pytest.mark.django_db(transaction=True)
def test_killing_the_celery_worker_mid_drain_loses_and_duplicates_nothing(stream, tmp_path):
    from billing.models import SpendLog
    from billing.tasks import spend_drain

    key = make_key().row
    events = [spend_event(key=key, cost="0.00000123") for _ in range(3000)]
    push(stream, events)
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "LLMUR_VAR_DIR": str(tmp_path),
           "LLMUR_SPEND_DRAIN_BATCH": "25", "LLMUR_SPEND_CLAIM_IDLE_MS": "500", "LLMUR_CONFIGURATION": ""}
    worker = _worker(env)
    try:
        spend_drain.apply_async(kwargs={"max_seconds": 120})
        deadline = time.monotonic() + 60
        while SpendLog.objects.count() < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(worker.pid, signal.SIGKILL)                 # mid-drain: no chance to clean up
        worker.wait(timeout=10)
        recorded_at_kill = SpendLog.objects.count()
        assert 0 < recorded_at_kill < 3000
        worker = _worker(env)
        spend_drain.apply_async(kwargs={"max_seconds": 120})
        deadline = time.monotonic() + 90
        while SpendLog.objects.count() < 3000 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=20)
    assert SpendLog.objects.filter(key_id=key.pk).count() == 3000
    assert set(SpendLog.objects.values_list("request_id", flat=True)) == {e["request_id"] for e in events}
    key.refresh_from_db()
    assert key.spend == Decimal("0.00000123") * 3000                       # nothing booked twice
