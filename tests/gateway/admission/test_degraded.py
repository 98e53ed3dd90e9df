"""Redis unreachable (fail_open and fail_closed) and embedded mode (no Redis at all)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from gateway.context import Usage
from llmur.core.errors import LlmurError
from tests.factories import make_key
from tests.gateway.admission.conftest import make_ctx, principal_for, run

pytestmark = pytest.mark.django_db


async def _one(principal, usage=Usage(10, 5), **ctx_args):
    from gateway import admission

    ctx = make_ctx(principal, **ctx_args)
    try:
        await admission.admit(ctx)
    except LlmurError as exc:
        return exc
    ctx.usage = Usage(usage.prompt_tokens, usage.completion_tokens)
    await admission.settle(ctx)
    return ctx


def test_redis_outage_fail_open_keeps_serving_and_records_every_request(own_redis, monkeypatch, settings):
    import time

    from billing.connections import budget_key, sync_redis
    from billing.models import SpendLog
    from billing.queue import drain
    from billing.writer import writer
    from gateway import admission

    monkeypatch.setattr(settings.LLMUR.config, "workers", 2)
    monkeypatch.setattr(admission.breaker.state.circuit, "retry_seconds", 0.1)
    key = make_key(rpm_limit=1000, max_budget=Decimal("5")).row
    principal = principal_for(key)

    async def before():
        results = [await _one(principal) for _ in range(3)]
        await writer.stop()
        return results

    async def during():
        results = [await _one(principal) for _ in range(4)]
        await writer.stop()            # the server's shutdown hook does this; here: flush now
        return results

    ok_before = run(before)
    own_redis.stop()
    ok_during = run(during)
    assert not any(isinstance(r, LlmurError) for r in ok_before + ok_during)
    assert SpendLog.objects.filter(request_id__in=[c.request_id for c in ok_during]).count() == 4
    own_redis.start()                  # empty, as after a restart without persistence
    time.sleep(0.2)
    ok_after = run(before)
    assert not any(isinstance(r, LlmurError) for r in ok_after)
    assert admission.breaker.state.degraded_since is None
    drain()
    # Recovery dropped the counter this process spent around; the next request rebuilds it from
    # the database, which now holds the outage's spend and the drained stream's.
    run(lambda: _one(principal, usage=Usage(0, 0)))
    assert int(sync_redis().hget(budget_key("key", key.pk), "s")) == sum(
        int(c.cost * 10**8) for c in ok_during + ok_after)
    ids = [c.request_id for c in ok_after + ok_during]
    assert SpendLog.objects.filter(request_id__in=ids).count() == 7
    key.refresh_from_db()
    assert key.spend == sum((c.cost for c in ok_after + ok_during), Decimal(0))


def test_redis_outage_divides_rate_limits_by_workers(own_redis, monkeypatch, settings):
    from billing.writer import writer

    monkeypatch.setattr(settings.LLMUR.config, "workers", 2)
    principal = principal_for(make_key(rpm_limit=10).row)
    own_redis.stop()

    async def go():
        results = [await _one(principal) for _ in range(8)]
        await writer.stop()
        return results

    results = run(go)
    refused = [r for r in results if isinstance(r, LlmurError)]
    assert len(results) - len(refused) == 5 and refused[0].status == 429


def test_redis_outage_fail_closed_refuses_with_503(own_redis, monkeypatch, settings):
    monkeypatch.setattr(settings.LLMUR.config, "cache_failure_policy", "fail_closed")
    principal = principal_for(make_key(rpm_limit=10).row)
    own_redis.stop()

    async def go():
        return await _one(principal)

    error = run(go)
    assert isinstance(error, LlmurError)
    assert error.status == 503 and "fail_closed" in error.message


def test_readiness_reports_degraded_limits(own_redis, client):
    from gateway import admission

    principal = principal_for(make_key(rpm_limit=10).row)
    own_redis.stop()

    async def go():
        from billing.writer import writer
        result = await _one(principal)
        await writer.stop()
        return result

    run(go)
    assert admission.lifecycle.readiness()[1].startswith("degraded since")
    # (The probe's own cache check pings the shared test Redis, which is up; the limits line is ours.)
    body = client.get("/health/readiness").json()
    assert body["limits"].startswith("degraded since") and "redis unreachable (fail_open)" in body["limits"]


def test_embedded_mode_enforces_limits_and_writes_spend_in_batches(embedded):
    from billing.models import SpendLog
    from billing.writer import writer

    key = make_key(rpm_limit=3, max_budget=Decimal("1")).row
    principal = principal_for(key)

    async def go():
        results = [await _one(principal) for _ in range(5)]
        assert writer.pending() == 3        # buffered, not yet written: off the response path
        await writer.stop()                 # graceful shutdown flushes
        return results

    results = run(go)
    ok = [r for r in results if not isinstance(r, LlmurError)]
    assert len(ok) == 3
    assert SpendLog.objects.filter(request_id__in=[c.request_id for c in ok]).count() == 3
    key.refresh_from_db()
    assert key.spend == sum((c.cost for c in ok), Decimal(0))


def test_embedded_budget_counts_spend_settled_in_this_process(embedded):
    from billing.writer import writer

    key = make_key(key_alias="tight", max_budget=Decimal("0.005")).row
    principal = principal_for(key)

    async def go():
        results = [await _one(principal, usage=Usage(1000, 0)) for _ in range(4)]   # $0.0025 each
        await writer.stop()
        return results

    results = run(go)
    refused = [r for r in results if isinstance(r, LlmurError)]
    assert len(results) - len(refused) == 2
    assert refused[0].type == "budget_exceeded"
    assert refused[0].message == ("Budget has been exceeded! key 'tight' budget exceeded: spend $0.005 of "
                                  "max_budget $0.005")


def test_after_redis_fails_in_flight_reservations_still_count_against_the_budget(own_redis):
    from billing.writer import writer
    from gateway import admission

    key = make_key(key_alias="inflight", max_budget=Decimal("0.01")).row
    principal = principal_for(key)

    async def go():
        held = []
        for _ in range(1000):                         # fill the budget with requests still in flight
            ctx = make_ctx(principal, max_tokens=100)
            try:
                await admission.admit(ctx)
            except LlmurError:
                break
            held.append(ctx)
        else:
            raise AssertionError("1000 reservations never filled a $0.01 budget: is gpt-4o priced?")
        own_redis.stop()
        refused = await _one(principal)               # per-process now: the reservations are remembered
        for ctx in held:
            ctx.usage = Usage(10, 10)
            await admission.settle(ctx)
        await writer.stop()
        return held, refused

    held, refused = run(go)
    assert held and isinstance(refused, LlmurError) and refused.type == "budget_exceeded"
