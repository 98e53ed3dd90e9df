"""Failed requests keep the upstream's error (credentials scrubbed); model health and per-entity usage read it."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command

from accounts.models import Team
from billing.health import model_health
from billing.models import SpendLog
from billing.services import daily_spend_rollup, spend_record_batch
from billing.usage import entity_models, entity_usage
from llmur.core.scrub import scrub_secrets
from tests.billing.conftest import spend_event
from tests.conftest import chat_status, wait_until
from tests.factories import make_key as make_key_row


@pytest.mark.django_db(transaction=True)
def test_a_failed_request_keeps_the_upstreams_error_text(gateway, make_key):
    key = make_key(key_alias="fails")
    assert chat_status(gateway.url, key, model="mock-500") >= 500

    def failed_row():
        call_command("process_spend", verbosity=0)
        return SpendLog.objects.filter(key__key_alias="fails", status=SpendLog.Status.FAILURE).first()

    row = wait_until(failed_row, timeout=30, what="the failed request's spend log")
    assert "fake provider failure" in row.error_message and row.error_message.startswith("Upstream deployment")


@pytest.mark.parametrize("secret", ["sk-proj-AbCdEfGh1234567890abcdef", "sk-ant-api03-abcdefgh12345678",
                                    "AKIAABCDEFGHIJKLMNOP", "Bearer abcdef123456.ghijkl", "api_key=hunter2hunter2",
                                    "eyJhbGciOiJI.eyJzdWIiOiIx.SflKxwRJSMeKKF2QT4"])
def test_anything_like_a_credential_is_scrubbed_from_error_text(secret):
    text = scrub_secrets(f"Upstream deployment d1 failed with HTTP 401: Incorrect API key provided: {secret} (see docs)")
    assert secret.split()[-1].split("=")[-1] not in text and "[REDACTED]" in text
    assert text.startswith("Upstream deployment d1 failed with HTTP 401") and text.endswith("(see docs)")


@pytest.mark.django_db
def test_an_error_event_is_scrubbed_again_when_it_becomes_a_spend_log():
    event = spend_event(success=False) | {"error": "upstream said: key sk-live-0123456789abcdefXYZ is wrong"}
    spend_record_batch(events=[event])
    assert SpendLog.objects.get().error_message == "upstream said: key [REDACTED] is wrong"


WHEN = dt.datetime(2026, 5, 4, 10, tzinfo=dt.UTC)


@pytest.mark.django_db
def test_model_health_puts_failing_deployments_first_with_their_latest_errors():
    now = WHEN + dt.timedelta(hours=1)
    events = [spend_event(model="good", when=WHEN) for _ in range(3)]
    for minute in (5, 20, 40):
        event = spend_event(model="bad", when=WHEN + dt.timedelta(minutes=minute), success=False)
        events.append(event | {"error": f"Upstream deployment dep-1 failed with HTTP 500: boom at {minute}"})
    events.append(spend_event(model="bad", when=WHEN - dt.timedelta(days=3), success=False))   # outside the window
    spend_record_batch(events=events)
    rows = model_health(hours=24, now=now)
    assert [r["model"] for r in rows] == ["bad", "good"]
    bad = rows[0]
    assert (bad["requests"], bad["failures"]) == (3, 3)
    assert bad["first_failure"] == WHEN + dt.timedelta(minutes=5) and bad["last_failure"] == WHEN + dt.timedelta(
        minutes=40)
    assert [e["error_message"].rsplit(": ", 1)[1] for e in bad["errors"]] == ["boom at 40", "boom at 20", "boom at 5"]
    assert rows[1]["failures"] == 0 and rows[1]["errors"] == []


@pytest.mark.django_db
def test_usage_of_one_entity_per_day_with_zeros_and_totals():
    team = Team.objects.create(name="usage-team")
    key, other = make_key_row(team=team).row, make_key_row().row
    spend_record_batch(events=[
        spend_event(key=key, team=team, cost="0.5", when=WHEN),
        spend_event(key=key, team=team, cost="0.25", when=WHEN + dt.timedelta(days=2), model="other-model"),
        spend_event(key=key, team=team, cost="0.1", when=WHEN + dt.timedelta(days=2), success=False),
        spend_event(key=other, cost="9", when=WHEN),
    ])
    daily_spend_rollup()
    start, end = WHEN.date(), WHEN.date() + dt.timedelta(days=3)
    usage = entity_usage(kind="key", entity_id=key.pk, start=start, end=end)
    assert [d["cost"] for d in usage["days"]] == [Decimal("0.5"), 0, Decimal("0.35"), 0]
    assert [d["requests"] for d in usage["days"]] == [1, 0, 2, 0]
    assert usage["totals"]["cost"] == Decimal("0.85") and usage["totals"]["failed"] == 1
    assert entity_usage(kind="team", entity_id=team.pk, start=start, end=end)["totals"]["requests"] == 3
    assert [m["model"] for m in entity_models(kind="key", entity_id=key.pk, start=start, end=end)] == [
        "gpt-4o", "other-model"]
