"""Refused requests are counted per key and reason in process and added to RefusalCount periodically."""
from __future__ import annotations

import datetime as dt
from datetime import timedelta

import pytest
from django.utils import timezone as dj_timezone

from billing import refusals
from billing.models import RefusalCount, SpendLog
from llmur.core.errors import LlmurError
from tests.conftest import chat_status, mock_model_list, start_gateway, wait_until
from tests.factories import make_key as make_key_row


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, fake_provider):
    """A server of this module's own: no other test's refusals are counted into its rows."""
    with django_db_blocker.unblock():
        handle = start_gateway({"model_list": mock_model_list(fake_provider.url), "router_settings": {"num_retries": 0}})
    yield handle
    handle.stop()


def _refused(**filters) -> int:
    return sum(RefusalCount.objects.filter(**filters).values_list("count", flat=True))


@pytest.mark.django_db(transaction=True)
def test_the_gateway_counts_refusals_per_key_and_reason_without_a_row_per_request(server, make_key):
    before_logs = SpendLog.objects.count()
    for i in range(3):
        assert chat_status(server.url, f"sk-made-up-{i}-aaaaaaaaaaaaaaaaaaaa") == 401
    expired = make_key(key_alias="expired-one", expires_at=dj_timezone.now() - timedelta(days=1))
    for _ in range(2):
        assert chat_status(server.url, expired) == 401
    narrow = make_key(key_alias="narrow", allowed_models=["mock-claude"])
    assert chat_status(server.url, narrow, model="mock-gpt") == 401   # LiteLLM's status for it

    # The server adds its counts every few seconds: wait for all six to arrive.
    wait_until(lambda: _refused() >= 6, timeout=30, what="the refusal counts to be flushed")
    assert _refused(bucket="unknown", reason="unknown key") == 3
    assert RefusalCount.objects.filter(bucket="unknown").count() == 1          # one row for three made-up keys
    expired_row = RefusalCount.objects.get(reason="expired key")
    assert expired_row.count == 2 and expired_row.key.key_alias == "expired-one"
    assert "expired" in expired_row.samples[0]["message"]
    narrow_row = RefusalCount.objects.get(reason="model not allowed")
    assert narrow_row.key.key_alias == "narrow" and "mock-gpt" in narrow_row.samples[0]["message"]
    # Samples never hold the key that was presented.
    assert "sk-made-up" not in str(list(RefusalCount.objects.values_list("samples", flat=True)))
    assert SpendLog.objects.count() == before_logs


@pytest.mark.django_db
def test_flushes_add_to_the_hours_row_and_keep_the_latest_samples():
    key = make_key_row(key_alias="counted").row
    counter = refusals.RefusalCounter()
    when = dt.datetime(2026, 3, 1, 10, 15, tzinfo=dt.UTC)
    for i in range(4):
        counter.record(key_id=key.pk, key_display="sk-…abcd", status=429, reason="over budget",
                       message=f"budget exceeded #{i}", request_id=f"r{i}", now=when + timedelta(minutes=i))
    assert counter.flush_sync() == 4
    for i in range(4, 7):
        counter.record(key_id=key.pk, key_display="sk-…abcd", status=429, reason="over budget",
                       message=f"budget exceeded #{i}", request_id=f"r{i}", now=when + timedelta(minutes=i))
    assert counter.flush_sync() == 3
    row = RefusalCount.objects.get()
    assert row.count == 7 and row.hour == when.replace(minute=0)
    assert [s["request_id"] for s in row.samples] == ["r6", "r5", "r4", "r3", "r2"]
    assert counter.pending() == 0 and counter.flush_sync() == 0


def test_past_the_bucket_cap_new_keys_are_counted_as_unknown(monkeypatch):
    monkeypatch.setattr(refusals, "MAX_BUCKETS", 2)
    counter = refusals.RefusalCounter()
    for key_id in (1, 2, 3, 4):
        counter.record(key_id=key_id, key_display="k", status=401, reason="expired key", message="expired")
    buckets = counter.take()
    assert set(buckets) == {(1, "expired key"), (2, "expired key"), (None, "expired key")}
    assert buckets[(None, "expired key")].count == 2 and buckets[(None, "expired key")].key_display == ""


@pytest.mark.parametrize(("error", "reason"), [
    (LlmurError(401, "invalid_api_key", "Authentication Error: this key has expired."), "expired key"),
    (LlmurError(401, "invalid_api_key", "Authentication Error: this key is blocked."), "blocked key or owner"),
    (LlmurError(401, "invalid_api_key", "No API key provided."), "missing key"),
    (LlmurError(401, "invalid_api_key", "invalid API key (token_not_found_in_db)"), "unknown key"),
    (LlmurError(429, "budget_exceeded", "key budget exceeded"), "over budget"),
    (LlmurError(429, "rate_limit_error", "rpm reached"), "rate limited"),
    (LlmurError(403, "permission_error", "not allowed to use model 'x'"), "model not allowed"),
    (LlmurError(401, "key_model_access_denied", "key not allowed to access model. This key is not allowed "
                 "to use 'x'."), "model not allowed"),
])
def test_refusal_reasons_are_plain_words(error, reason):
    assert refusals.refusal_reason(status=error.status, type=error.type, message=error.message) == reason
