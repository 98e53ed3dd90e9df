"""Billing writes on every database: idempotent spend recording, budget resets, daily rollup."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import close_old_connections, connection

from tests.billing.conftest import spend_event
from tests.factories import make_key

pytestmark = pytest.mark.db_matrix

# pytest-django's SQLite test database is in memory with a shared cache, where a second writer
# fails at once ("table is locked") instead of waiting; a file database waits (busy_timeout).
needs_concurrent_writers = pytest.mark.skipif(connection.vendor == "sqlite",
                                              reason="in-memory SQLite test database has no busy wait")


@pytest.mark.django_db
def test_recording_an_event_twice_keeps_one_row_and_counts_its_cost_once():
    from accounts.models import Team
    from billing.models import SpendLog
    from billing.services import spend_record_batch

    team = Team.objects.create(name="research")
    key = make_key(team=team).row
    events = [spend_event(key=key, team=team, cost="0.25"), spend_event(key=key, team=team, cost="0.5")]
    assert spend_record_batch(events=events) == 2
    assert spend_record_batch(events=events + [events[0]]) == 0
    assert SpendLog.objects.count() == 2
    key.refresh_from_db()
    team.refresh_from_db()
    assert key.spend == team.spend == Decimal("0.75")
    row = SpendLog.objects.get(request_id=events[0]["request_id"])
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens, row.cost) == (100, 20, 120, Decimal("0.25"))


@pytest.mark.django_db
def test_a_row_for_a_deleted_key_is_still_recorded():
    from billing.models import SpendLog
    from billing.services import spend_record_batch

    key = make_key().row
    event = spend_event(key=key)
    key.delete()
    assert spend_record_batch(events=[event]) == 1
    assert SpendLog.objects.filter(request_id=event["request_id"]).exists()


@needs_concurrent_writers
@pytest.mark.django_db(transaction=True)
def test_two_workers_recording_the_same_events_at_once_count_them_once():
    from billing.services import spend_record_batch

    key = make_key().row
    events = [spend_event(key=key, cost="0.01") for _ in range(50)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker():
        try:
            barrier.wait()
            spend_record_batch(events=events)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    key.refresh_from_db()
    assert key.spend == Decimal("0.50")


@pytest.mark.django_db
def test_budget_reset_happens_once_per_period_even_when_run_twice():
    from billing.services import budget_reset_due

    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    key = make_key(budget_duration="1h", spend=Decimal("3"), budget_reset_at=now - timedelta(seconds=1)).row
    fresh = make_key(budget_duration="30s", spend=Decimal("1")).row
    assert budget_reset_due(now=now) == [("key", key.pk)]
    assert budget_reset_due(now=now) == []
    key.refresh_from_db()
    fresh.refresh_from_db()
    assert key.spend == Decimal(0) and key.budget_reset_at == now + timedelta(hours=1)
    # An entity that never had a reset time gets one; its spend stays until then.
    assert fresh.spend == Decimal("1") and fresh.budget_reset_at == now + timedelta(seconds=30)


@needs_concurrent_writers
@pytest.mark.django_db(transaction=True)
def test_concurrent_budget_resets_reset_once():
    from billing.services import budget_reset_due

    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    make_key(budget_duration="1d", spend=Decimal("7"), budget_reset_at=now - timedelta(minutes=5)).row
    results: list = []
    barrier = threading.Barrier(3)

    def worker():
        try:
            barrier.wait()
            results.append(budget_reset_due(now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(r) for r in results) == [0, 0, 1]


@pytest.mark.django_db
def test_daily_rollup_sums_per_day_owner_and_model_and_is_idempotent():
    from billing.models import DailySpend
    from billing.services import daily_spend_rollup, spend_record_batch

    key = make_key().row
    day1 = datetime(2026, 3, 1, 23, 59, tzinfo=timezone.utc)
    day2 = datetime(2026, 3, 2, 0, 1, tzinfo=timezone.utc)
    spend_record_batch(events=[
        spend_event(key=key, cost="0.1", when=day1), spend_event(key=key, cost="0.2", when=day1),
        spend_event(key=key, cost="0.4", when=day2, success=False),
        spend_event(key=key, cost="0.8", when=day2, model="gpt-4o-mini"),
    ])
    assert [d.isoformat() for d in daily_spend_rollup()] == ["2026-03-01", "2026-03-02"]
    assert daily_spend_rollup() == []          # nothing new: nothing recomputed
    rows = {(r.day.isoformat(), r.model): r for r in DailySpend.objects.all()}
    assert set(rows) == {("2026-03-01", "gpt-4o"), ("2026-03-02", "gpt-4o"), ("2026-03-02", "gpt-4o-mini")}
    first = rows[("2026-03-01", "gpt-4o")]
    assert (first.cost, first.requests, first.prompt_tokens, first.key_id) == (Decimal("0.3"), 2, 200, key.pk)
    assert rows[("2026-03-02", "gpt-4o")].failed_requests == 1
    # A late event for day 1 recomputes that day only, replacing its row.
    spend_record_batch(events=[spend_event(key=key, cost="0.05", when=day1)])
    assert [d.isoformat() for d in daily_spend_rollup()] == ["2026-03-01"]
    first = DailySpend.objects.get(day="2026-03-01", model="gpt-4o")
    assert (first.cost, first.requests) == (Decimal("0.35"), 3)
    assert DailySpend.objects.count() == 3


def test_cost_is_tokens_times_price_with_deployment_overrides():
    from billing.pricing import Price, PriceBook, cost_of

    book = PriceBook()
    book._prices = {"gpt-4o": Price(Decimal("0.0000025"), Decimal("0.00001"))}
    listed = book.price_for(model="smart", deployment={"litellm_params": {"model": "openai/gpt-4o"}})
    assert cost_of(listed, prompt_tokens=1000, completion_tokens=100) == Decimal("0.0035")
    custom = book.price_for(model="smart", deployment={"litellm_params": {"model": "openai/gpt-4o"},
                                                       "model_info": {"output_cost_per_token": "0.00002"}})
    assert custom == Price(Decimal("0.0000025"), Decimal("0.00002"))
    assert book.price_for(model="unknown", deployment={"litellm_params": {"model": "x/unknown"}}) == Price(0, 0)


def test_dated_gpt35_snapshots_are_priced_by_the_seed(db):
    """LiteLLM's CI names openai/gpt-3.5-turbo-0301 (fake-openai-endpoint): booked at 0 it escaped every budget."""
    from billing.pricing import PriceBook, cost_of

    book = PriceBook()
    book.load()
    price = book.price_for(model="fake-openai-endpoint",
                           deployment={"litellm_params": {"model": "openai/gpt-3.5-turbo-0301"}})
    assert cost_of(price, prompt_tokens=8, completion_tokens=16) == Decimal("0.000044")
    assert book.is_priced(model="gpt-instruct", deployment={"litellm_params": {"model": "gpt-3.5-turbo-instruct"}})


def test_tokens_are_counted_offline_with_cl100k():
    from billing import tokens

    assert tokens.count_text("hello world") == 2
    assert tokens.count_prompt({"messages": [{"role": "user", "content": "hello world"}]}) == 3 + 3 + 2


@pytest.mark.django_db
def test_events_the_database_refused_are_spooled_and_replayed(monkeypatch, settings, tmp_path):
    from billing import services, writer
    from billing.models import SpendLog

    monkeypatch.setattr(settings.LLMUR, "var_dir", tmp_path)
    key = make_key().row
    events = [spend_event(key=key, cost="0.01") for _ in range(3)]
    real = services.spend_record_batch

    def database_down(**kwargs):
        raise services.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(writer, "spend_record_batch", database_down)
    assert writer._write_or_spool(events) == 0
    assert len(writer.spool_files()) == 1 and not SpendLog.objects.exists()
    monkeypatch.setattr(writer, "spend_record_batch", real)
    assert writer.spool_replay() == 3
    assert writer.spool_replay() == 0 and writer.spool_files() == []
    key.refresh_from_db()
    assert key.spend == Decimal("0.03")
