"""Budget alerts: once per threshold and budget period, signed webhooks retried then dead-lettered, e-mail."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest

from tests.conftest import start_gateway
from tests.factories import make_key
from tests.roadmap.conftest import CeleryWorkers, Receiver, wait_until

pytestmark = pytest.mark.serial

WEBHOOK_SECRET = "whsec-roadmap-test-0123456789"
IN_PRICE, OUT_PRICE = Decimal("0.000001"), Decimal("0.000002")
# One request below: 99 prompt tokens (the mock counts 4 characters a token) and 16 completion tokens.
REQUEST_COST = 99 * IN_PRICE + 16 * OUT_PRICE


def event(**fields) -> dict:
    return {"request_id": uuid.uuid4().hex, "model": "m", "prompt_tokens": 1, "completion_tokens": 1, **fields}


@pytest.fixture(scope="module")
def stack(django_db_setup, fake_provider):
    import redis
    from django.conf import settings

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()   # before any worker binds its queues
    receiver = Receiver()
    alerting = {"webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET, "thresholds": [50, 80, 100],
                "max_attempts": 3, "retry_backoff_seconds": 0.2}
    workers = CeleryWorkers({"application_secret": settings.SECRET_KEY, "log_level": "warning",
                             "alerting": alerting}, count=2)
    v1 = f"{fake_provider.url}/v1"
    gateway = start_gateway({"alerting": alerting, "model_list": [{
        "model_name": "priced", "litellm_params": {"model": "openai/mock-gpt", "api_base": v1},
        "model_info": {"input_cost_per_token": str(IN_PRICE), "output_cost_per_token": str(OUT_PRICE)}}]},
        workers=2)
    yield gateway, workers, receiver
    gateway.stop()
    workers.stop()
    receiver.close()


async def wave(url: str, key: str, n: int, start: int, drain: bool = True) -> list[int]:
    """n requests at once; their statuses. Drains are queued meanwhile, so both workers book concurrently."""
    from billing.tasks import spend_drain

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def one(i: int) -> int:
            body = {"model": "priced", "max_tokens": 16,
                    "messages": [{"role": "user", "content": f"request {i:04d} " + "lorem " * 64}]}
            async with session.post(f"{url}/v1/chat/completions", json=body,
                                    headers={"authorization": f"Bearer {key}"}) as response:
                await response.read()
                return response.status

        async def drains() -> None:
            for _ in range(4 if drain else 0):
                await asyncio.to_thread(spend_drain.delay, 5.0)
                await asyncio.sleep(0.05)

        statuses, _ = await asyncio.gather(asyncio.gather(*(one(start + i) for i in range(n))), drains())
        return list(statuses)


def signed(headers: dict[str, str], body: bytes) -> bool:
    """The receiver's check, written from the documented scheme (not with llmur's own helper)."""
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), headers["x-llmur-timestamp"].encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-llmur-signature"])


@pytest.mark.django_db(transaction=True)
def test_exactly_one_signed_webhook_per_threshold_across_concurrent_requests_and_two_workers(stack):
    from accounts.models import Team
    from billing.models import AlertDelivery, BudgetAlert, SpendLog
    from billing.tasks import spend_drain

    gateway, workers, receiver = stack
    team = Team.objects.create(name="alerted", max_budget=REQUEST_COST * 10, soft_budget=REQUEST_COST * 3)
    key, record = make_key(key_alias="alerted-key", team=team)
    served = 0
    for number in range(12):
        statuses = asyncio.run(wave(gateway.url, key, 8, number * 8))
        assert set(statuses) <= {200, 429}, statuses
        served += statuses.count(200)
        if 200 not in statuses:
            break   # refused with nothing in flight: the settled spend is at the budget
    else:
        pytest.fail("the budget never refused a whole wave")

    def booked() -> bool:
        spend_drain.delay(5.0)
        return SpendLog.objects.filter(key_id=record.pk).count() == served

    assert wait_until(booked, timeout=30, interval=0.5), workers.output()[-3000:]
    team.refresh_from_db()
    assert team.spend >= team.max_budget
    hooks = receiver.wait_for(4, timeout=30)
    time.sleep(1.5)   # a duplicate would arrive within the workers' next drains and retries
    hooks = receiver.received()
    payloads = [json.loads(body) for _, body in hooks]
    assert sorted(p["threshold"] for p in payloads) == ["100%", "50%", "80%", "soft"], payloads
    assert all(signed(headers, body) for headers, body in hooks)
    assert all(h["content-type"] == "application/json" and abs(int(h["x-llmur-timestamp"]) - time.time()) < 120
               for h, _ in hooks)
    assert {(p["entity_kind"], p["entity_id"], p["entity_name"]) for p in payloads} == {("team", team.pk, "alerted")}
    by_threshold = {p["threshold"]: p for p in payloads}
    assert Decimal(by_threshold["80%"]["threshold_amount"]) == (team.max_budget * Decimal("0.8")).quantize(
        Decimal("0.00000001"))
    assert Decimal(by_threshold["50%"]["spend"]) >= team.max_budget / 2
    assert "team 'alerted' reached 80% of its max_budget" in by_threshold["80%"]["message"]
    alerts = BudgetAlert.objects.filter(entity_kind="team", entity_id=team.pk)
    assert alerts.count() == 4
    assert set(AlertDelivery.objects.filter(alert__in=alerts).values_list("status", flat=True)) == {"delivered"}
    assert not BudgetAlert.objects.filter(entity_kind="key", entity_id=record.pk).exists()   # the key has no budget


@pytest.mark.django_db(transaction=True)
def test_failing_receiver_is_retried_with_backoff_then_dead_lettered(stack):
    from accounts.models import Team
    from billing.models import AlertDelivery, BudgetAlert, TeamAlertSetting
    from billing.services import spend_record_batch

    _, workers, receiver = stack
    failing = Receiver(status=500)
    try:
        team = Team.objects.create(name="failing-hook", max_budget=Decimal("1"))
        TeamAlertSetting.objects.create(team=team, webhook_url=failing.url, thresholds=[100])
        already = len(receiver.received())
        spend_record_batch(events=[event(team_id=team.pk, cost="1.25")])   # queues the delivery on commit
        delivery = AlertDelivery.objects.get(alert__entity_kind="team", alert__entity_id=team.pk)
        done = wait_until(lambda: AlertDelivery.objects.filter(pk=delivery.pk, status="dead").exists(), timeout=30)
        assert done, workers.output()[-3000:]
        time.sleep(1.0)
        attempts = failing.received()
        assert len(attempts) == 3
        assert all(signed(headers, body) for headers, body in attempts)
        assert len({headers["x-llmur-delivery"] for headers, _ in attempts}) == 1
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.last_error) == ("dead", 3, "webhook answered HTTP 500")
        assert BudgetAlert.objects.get(pk=delivery.alert_id).threshold == "100%"
        assert len(receiver.received()) == already   # the config's receiver is not this team's
    finally:
        failing.close()


@pytest.mark.db_matrix
@pytest.mark.django_db
def test_thresholds_fire_once_per_period_and_email_is_sent(mailoutbox):
    from accounts.models import Team
    from billing.alerts import alert_delivery_attempt
    from billing.models import AlertDelivery, BudgetAlert, TeamAlertSetting
    from billing.services import budget_reset_due, spend_record_batch

    team = Team.objects.create(name="mailed", max_budget=Decimal("10"), soft_budget=Decimal("2"),
                               budget_duration="1d")
    TeamAlertSetting.objects.create(team=team, email_to="ops@example.com, lead@example.com", thresholds=[50, 90])
    budget_reset_due()   # gives the team its first budget_reset_at, as the beat task does
    spend_record_batch(events=[event(team_id=team.pk, cost="1")])
    assert not BudgetAlert.objects.exists()
    spend_record_batch(events=[event(team_id=team.pk, cost="4.5"), event(team_id=team.pk, cost="0.1")])
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == ["50%", "soft"]
    spend_record_batch(events=[event(team_id=team.pk, cost="1")])   # 6.6: nothing new crossed
    assert BudgetAlert.objects.count() == 2

    delivery = AlertDelivery.objects.get(alert__threshold="50%")
    assert (delivery.channel, delivery.target) == ("email", "ops@example.com, lead@example.com")
    assert alert_delivery_attempt(delivery_id=delivery.pk) is None
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["ops@example.com", "lead@example.com"]
    assert message.subject == "[llmur] budget alert: team mailed at 50%"
    assert "team 'mailed' reached 50% of its max_budget $10.00: spend $5.60" in message.body
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert alert_delivery_attempt(delivery_id=delivery.pk) is None and len(mailoutbox) == 1   # no resend

    # A new budget period: the same thresholds alert again, once.
    team.refresh_from_db()
    assert budget_reset_due(now=team.budget_reset_at + timedelta(seconds=1)) == [("team", team.pk)]
    spend_record_batch(events=[event(team_id=team.pk, cost="2.5")])
    spend_record_batch(events=[event(team_id=team.pk, cost="2.6")])
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == ["50%", "50%", "soft", "soft"]
    assert BudgetAlert.objects.values("period_start").distinct().count() == 2


@pytest.mark.db_matrix
@pytest.mark.django_db
def test_alerts_off_for_a_team_and_bad_settings_are_refused(tmp_path):
    from accounts.models import Team
    from billing.models import BudgetAlert, TeamAlertSetting
    from billing.services import spend_record_batch
    from llmur.config import ConfigError, load_config

    team = Team.objects.create(name="muted", max_budget=Decimal("1"))
    TeamAlertSetting.objects.create(team=team, enabled=False)
    spend_record_batch(events=[event(team_id=team.pk, cost="2")])
    assert not BudgetAlert.objects.exists()

    path = tmp_path / "config.yaml"
    path.write_text("alerting:\n  webhook_url: https://hooks.example.com/x\n")
    with pytest.raises(ConfigError) as missing:
        load_config(path, env={"LLMUR_VAR_DIR": str(tmp_path)})
    assert "alerting.webhook_secret: required with alerting.webhook_url" in str(missing.value)
    path.write_text("alerting:\n  thresholds: [50, -5]\n")
    with pytest.raises(ConfigError) as bad:
        load_config(path, env={"LLMUR_VAR_DIR": str(tmp_path)})
    assert "alerting.thresholds" in str(bad.value) and "-5" in str(bad.value)


@pytest.mark.django_db(transaction=True)
def test_embedded_mode_alerts_from_the_in_process_writer(fake_provider, receiver):
    """Without Redis there is no Celery worker: the writer books spend and a thread delivers."""
    from accounts.models import Team
    from billing.models import SpendLog

    team = Team.objects.create(name="embedded", max_budget=REQUEST_COST * 4)
    key, record = make_key(key_alias="embedded-key", team=team)
    alerting = {"webhook_url": receiver.url, "webhook_secret": WEBHOOK_SECRET, "thresholds": [100]}
    gateway = start_gateway({"alerting": alerting, "model_list": [{
        "model_name": "priced", "litellm_params": {"model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1"},
        "model_info": {"input_cost_per_token": str(IN_PRICE), "output_cost_per_token": str(OUT_PRICE)}}]},
        env={"REDIS_URL": ""})
    try:
        statuses = []
        for number in range(12):
            statuses += asyncio.run(wave(gateway.url, key, 1, number, drain=False))
            if statuses[-1] == 429:
                break
            # The writer books every 250 ms: wait until it has booked what was answered.
            assert wait_until(lambda: SpendLog.objects.filter(key_id=record.pk).count() == statuses.count(200))
        assert statuses[-1] == 429, statuses
        hooks = receiver.wait_for(1, timeout=20)
        time.sleep(1.0)
    finally:
        gateway.stop()
    hooks = receiver.received()
    assert [json.loads(body)["threshold"] for _, body in hooks] == ["100%"], gateway.output()[-2000:]
    assert signed(*hooks[0])
