"""VirtualKey.last_used_at (issue 15 item 8): written when spend is booked, off the request path,
at most once a minute per key."""
from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.billing.conftest import spend_event
from tests.conftest import mock_model_list, start_gateway
from tests.factories import make_key
from tests.gateway.helpers import bearer, post


def _last_used_writes(queries) -> int:
    return sum(1 for query in queries if query["sql"].startswith("UPDATE") and "last_used_at" in query["sql"])


@pytest.fixture
def redis_gateway(django_db_setup, fake_provider, redis_client):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL")
    server = start_gateway({"model_list": mock_model_list(fake_provider.url), "router_settings": {"num_retries": 0}})
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_request_sets_last_used_at_once_drained_and_a_second_within_a_minute_writes_nothing(
        redis_gateway, redis_client, transactional_db):
    from accounts.models import VirtualKey
    from billing.models import SpendLog
    from billing.queue import drain

    key = make_key(key_alias="last-used").plaintext
    row = VirtualKey.objects.get(key_alias="last-used")
    assert row.last_used_at is None
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    assert post(redis_gateway.url, "/v1/chat/completions", body, bearer(key))[0] == 200
    row.refresh_from_db()
    assert row.last_used_at is None          # the request itself never writes it
    drain(client=redis_client, max_seconds=30)
    row.refresh_from_db()
    first = row.last_used_at
    assert first is not None
    assert SpendLog.objects.get(key_id=row.pk).ended_at == first

    assert post(redis_gateway.url, "/v1/chat/completions", body, bearer(key))[0] == 200
    with CaptureQueriesContext(connection) as queries:
        drain(client=redis_client, max_seconds=30)
    assert SpendLog.objects.filter(key_id=row.pk).count() == 2
    row.refresh_from_db()
    assert row.last_used_at == first
    assert _last_used_writes(queries.captured_queries) == 0


@pytest.mark.django_db
def test_booking_moves_last_used_at_to_the_latest_use_once_the_minute_has_passed():
    from billing.services import spend_record_batch

    key = make_key().row
    t0 = timezone.now()
    # One batch with two uses: the later one is kept.
    spend_record_batch(events=[spend_event(key=key, when=t0), spend_event(key=key, when=t0 + timedelta(seconds=5))])
    key.refresh_from_db()
    assert key.last_used_at == t0 + timedelta(seconds=5, milliseconds=12)
    with CaptureQueriesContext(connection) as queries:
        spend_record_batch(events=[spend_event(key=key, when=t0 + timedelta(seconds=40))])
    key.refresh_from_db()
    assert key.last_used_at == t0 + timedelta(seconds=5, milliseconds=12)
    assert _last_used_writes(queries.captured_queries) == 0
    spend_record_batch(events=[spend_event(key=key, when=t0 + timedelta(minutes=2))])
    key.refresh_from_db()
    assert key.last_used_at == t0 + timedelta(minutes=2, milliseconds=12)


@pytest.mark.django_db
def test_another_worker_within_the_minute_does_not_write_again():
    """The throttle holds across processes: the UPDATE itself is conditional on the stored value."""
    from billing import services

    key = make_key().row
    t0 = timezone.now()
    assert services.key_last_used_touch(used={key.pk: t0}) == 1
    services._last_used_written.clear()        # as seen by a worker that has never written this key
    assert services.key_last_used_touch(used={key.pk: t0 + timedelta(seconds=30)}) == 0
    key.refresh_from_db()
    assert key.last_used_at == t0
