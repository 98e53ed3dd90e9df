"""Admission and settlement on real Redis: rate limits, budgets, headers, one stream event per request."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

import orjson
import pytest

from gateway.context import Usage
from llmur.core.errors import LlmurError
from tests.factories import make_key
from tests.gateway.admission.conftest import make_ctx, principal_for, run

pytestmark = pytest.mark.django_db


def admit_and_settle(principal, n, *, usage=Usage(10, 5), **ctx_args):
    """n sequential requests; returns (admitted contexts, refusals)."""
    from gateway import admission

    async def go():
        admitted, refused = [], []
        for _ in range(n):
            ctx = make_ctx(principal, **ctx_args)
            try:
                await admission.admit(ctx)
            except LlmurError as exc:
                refused.append(exc)
                continue
            ctx.usage = Usage(usage.prompt_tokens, usage.completion_tokens)
            await admission.settle(ctx)
            admitted.append(ctx)
        return admitted, refused

    return run(go)


def test_rpm_limit_admits_exactly_the_limit_then_429_with_headers(redis_mode):
    key = make_key(key_alias="ci-bot", rpm_limit=5).row
    admitted, refused = admit_and_settle(principal_for(key), 8)
    assert len(admitted) == 5 and len(refused) == 3
    error = refused[0]
    assert (error.status, error.type) == (429, "rate_limit_error")
    assert "key 'ci-bot'" in error.message and "rpm_limit" in error.message
    assert error.headers["x-ratelimit-limit-requests"] == "5"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert 1 <= int(error.headers["Retry-After"]) <= 60
    assert admitted[0].response_headers["x-ratelimit-remaining-requests"] == "4"
    assert admitted[-1].response_headers["x-ratelimit-remaining-requests"] == "0"


def test_refused_requests_leave_no_spend_event(redis_mode):
    from billing.connections import STREAM

    key = make_key(rpm_limit=2).row
    admitted, refused = admit_and_settle(principal_for(key), 5)
    entries = redis_mode.xrange(STREAM)
    assert len(entries) == len(admitted) == 2
    assert {orjson.loads(fields[b"e"])["request_id"] for _, fields in entries} == {c.request_id for c in admitted}


def test_tpm_limit_counts_settled_tokens(redis_mode):
    key = make_key(tpm_limit=100).row
    admitted, refused = admit_and_settle(principal_for(key), 5, usage=Usage(30, 20))
    # 50 tokens each: the third request finds 100 used.
    assert len(admitted) == 2 and len(refused) == 3
    assert "tpm_limit" in refused[0].message
    assert refused[0].headers["x-ratelimit-remaining-tokens"] == "0"
    assert admitted[1].response_headers["x-ratelimit-remaining-tokens"] == "50"


def test_max_parallel_requests_frees_the_slot_on_settle(redis_mode):
    from gateway import admission

    key = make_key(max_parallel_requests=2).row
    principal = principal_for(key)

    async def go():
        held = [make_ctx(principal) for _ in range(2)]
        for ctx in held:
            await admission.admit(ctx)
        third = make_ctx(principal)
        with pytest.raises(LlmurError) as refused:
            await admission.admit(third)
        await admission.settle(held[0])
        await admission.admit(third)   # a slot came back
        return refused.value

    error = run(go)
    assert error.status == 429 and "max_parallel_requests" in error.message and error.headers["Retry-After"]


def test_deployment_rpm_limits_every_caller(redis_mode):
    deployment = {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "rpm": 3}}
    admitted_a, _ = admit_and_settle(principal_for(make_key().row), 2, deployment=deployment)
    admitted_b, refused_b = admit_and_settle(principal_for(make_key().row), 3, deployment=deployment)
    assert len(admitted_a) == 2 and len(admitted_b) == 1 and len(refused_b) == 2
    assert "deployment 'dep-1'" in refused_b[0].message


def test_budget_exceeded_names_the_team_its_limit_and_spend(redis_mode):
    from accounts.models import Team

    team = Team.objects.create(name="research", max_budget=Decimal("0.001"))
    key = make_key(team=team).row
    principal = principal_for(key, team)
    # As the gateway's auth builds it: limits without names; the refusal looks the name up.
    principal = type(principal)(**{**{f: getattr(principal, f) for f in principal.__slots__},
                                   "limits": tuple(replace(limits, name="") for limits in principal.limits)})
    # gpt-4o: 1000 prompt tokens × $2.50/1M = $0.0025 per request, over the team's $0.001 at once.
    admitted, refused = admit_and_settle(principal, 3, usage=Usage(1000, 0))
    assert len(admitted) == 1 and len(refused) == 2
    error = refused[0]
    assert (error.status, error.type) == (429, "budget_exceeded")
    assert error.message == ("Budget has been exceeded! team 'research' budget exceeded: spend $0.0025 of "
                             "max_budget $0.001")


def test_budget_counter_is_rebuilt_from_database_and_stream(redis_mode):
    from billing.connections import budget_key
    from billing.queue import drain

    key = make_key(max_budget=Decimal("1.00")).row
    principal = principal_for(key)
    admit_and_settle(principal, 4, usage=Usage(1000, 100))        # 4 × $0.0035
    drain(client=redis_mode)                                       # now booked in the database
    admit_and_settle(principal, 2, usage=Usage(1000, 100))        # 2 more, still in the stream
    key.refresh_from_db()
    assert key.spend == Decimal("0.014")
    redis_mode.delete(budget_key("key", key.pk))                   # as if Redis lost the counter
    admit_and_settle(principal, 1, usage=Usage(0, 0))              # rebuilds, then admits
    assert int(redis_mode.hget(budget_key("key", key.pk), "s")) == 2100000   # $0.021 in 1e-8 USD


def test_soft_budget_only_warns_with_a_header(redis_mode):
    key = make_key(key_alias="soft", soft_budget=Decimal("0.001")).row
    admitted, refused = admit_and_settle(principal_for(key), 3, usage=Usage(1000, 0))
    assert len(admitted) == 3 and not refused
    assert "x-llmur-budget-warning" not in admitted[0].response_headers
    assert admitted[2].response_headers["x-llmur-budget-warning"] == (
        "key 'soft' soft_budget $0.001 reached: spend $0.005")


def test_concurrent_requests_overshoot_the_budget_by_at_most_one_reservation(redis_mode):
    """200 at once (half streaming) against a budget that covers about 100 of them."""
    from billing.models import SpendLog
    from billing.pricing import prices
    from billing.queue import drain
    from gateway import admission

    # Each request: a 1,600-character prompt (400 tokens, as usage reports) + 100 completion
    # tokens of gpt-4o = $0.002; the budget covers 100 of them.
    key = make_key(max_budget=Decimal("0.20")).row
    principal = principal_for(key)
    outcomes: dict[str, object] = {}

    async def one(i: int):
        ctx = make_ctx(principal, stream=i % 2 == 0, max_tokens=100, content="word" * 400)
        try:
            await admission.admit(ctx)
        except LlmurError as exc:
            outcomes[ctx.request_id] = exc
            return
        await asyncio.sleep(0.01 * (i % 5))        # overlap admissions with settlements
        ctx.usage = Usage(400, 100)
        await admission.settle(ctx)
        outcomes[ctx.request_id] = ctx

    async def go():
        await asyncio.gather(*(one(i) for i in range(200)))

    run(go)
    drain(client=redis_mode)
    ok = {rid: ctx for rid, ctx in outcomes.items() if not isinstance(ctx, LlmurError)}
    refused = [exc for exc in outcomes.values() if isinstance(exc, LlmurError)]
    assert len(ok) + len(refused) == 200 and refused
    assert 80 <= len(ok) <= 101                       # the budget's ~100, not far fewer
    assert all(exc.type == "budget_exceeded" for exc in refused)
    rows = SpendLog.objects.filter(key_id=key.pk)
    assert set(rows.values_list("request_id", flat=True)) == set(ok)
    prices.load()
    price = prices.price_for(model="gpt-4o", deployment={"litellm_params": {"model": "openai/gpt-4o"}})
    expected = sum((price.input_cost_per_token * 400 + price.output_cost_per_token * 100) for _ in ok)
    total = sum(rows.values_list("cost", flat=True), Decimal(0))
    assert total == expected
    largest_reservation = max(Decimal(ctx.reservation.reserve) / 10**8 for ctx in ok.values())
    assert total <= Decimal("0.20") + largest_reservation
    key.refresh_from_db()
    assert key.spend == total


def test_a_budget_reset_reopens_admission_with_a_fresh_counter(redis_mode):
    from datetime import timedelta

    from django.utils import timezone

    from billing.connections import budget_key
    from billing.queue import drain
    from billing.tasks import budget_reset

    key = make_key(max_budget=Decimal("0.004"), budget_duration="30s").row
    principal = principal_for(key)
    admitted, refused = admit_and_settle(principal, 3, usage=Usage(1000, 0))     # $0.0025 each
    assert len(admitted) == 2 and refused
    drain(client=redis_mode)
    key.refresh_from_db()
    assert key.spend == Decimal("0.005")
    type(key).objects.filter(pk=key.pk).update(budget_reset_at=timezone.now() - timedelta(seconds=1))
    assert budget_reset() == 1
    assert budget_reset() == 0                                                   # once per period
    assert not redis_mode.exists(budget_key("key", key.pk))                      # rebuilt on next use
    admitted, refused = admit_and_settle(principal, 1, usage=Usage(1000, 0))
    assert len(admitted) == 1 and not refused
    key.refresh_from_db()
    assert key.spend == Decimal(0) and key.budget_reset_at > timezone.now()


def test_a_burst_on_a_cold_counter_rebuilds_it_with_one_database_read(redis_mode, django_assert_max_num_queries):
    """Admission never queries the database per request: a cold counter costs one rebuild."""
    from gateway import admission

    key = make_key(max_budget=Decimal("5")).row
    principal = principal_for(key)

    async def go():
        async def one():
            ctx = make_ctx(principal)
            await admission.admit(ctx)
            ctx.usage = Usage(10, 5)
            await admission.settle(ctx)
        await asyncio.gather(*(one() for _ in range(100)))

    # Prices (1 query, once per process) and the rebuild: the key's spend and which queued events
    # are booked (nothing queued yet, so no query for those); admissions that found the counter
    # missing just as the first rebuild finished may start one more.
    with django_assert_max_num_queries(3):
        run(go)
