"""Coarse rollups (SpendByModel, SpendByTeam, SpendByOwner) equal SpendLog's sums, and reports read them."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db.models import Count, Q, Sum

from tests.billing.conftest import spend_event
from tests.factories import make_key

pytestmark = [pytest.mark.db_matrix, pytest.mark.django_db]

DAY1 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.timezone.utc)
DAY2 = dt.datetime(2026, 3, 2, 23, 59, 59, tzinfo=dt.timezone.utc)


@pytest.fixture
def traffic():
    """Two teams in one organization, three keys, two models, two days, one failure; rolled up."""
    from accounts.models import Organization, Team
    from billing.services import daily_spend_rollup, spend_record_batch

    org = Organization.objects.create(name="acme")
    research = Team.objects.create(name="research", organization=org)
    sales = Team.objects.create(name="sales", organization=org)
    keys = [make_key(team=research).row, make_key(team=research).row, make_key(team=sales).row]
    events = []
    for i, (key, team) in enumerate([(keys[0], research), (keys[1], research), (keys[2], sales)] * 4):
        event = spend_event(key=key, team=team, cost=f"0.00{i % 7 + 1}", prompt=10 * (i + 1), completion=i,
                            model="gpt-4o" if i % 3 else "gpt-4o-mini", when=DAY1 if i < 7 else DAY2,
                            success=i != 5)
        event["organization_id"] = org.pk
        events.append(event)
    spend_record_batch(events=events)
    daily_spend_rollup()
    return {"org": org, "research": research, "sales": sales, "keys": keys}


def _sums(qs, columns):
    """{(day, *columns): (cost, prompt, completion, requests, failed)} of a rollup or of SpendLog."""
    from billing.models import SpendLog

    if qs.model is SpendLog:
        rows = (qs.order_by().values("started_at__date", *columns)
                .annotate(c=Sum("cost"), p=Sum("prompt_tokens"), o=Sum("completion_tokens"), n=Count("pk"),
                          f=Count("pk", filter=Q(status="failure"))))
        return {(r["started_at__date"], *(r[c] for c in columns)): (r["c"], r["p"], r["o"], r["n"], r["f"])
                for r in rows}
    return {(r.day, *(getattr(r, c) for c in columns)):
            (r.cost, r.prompt_tokens, r.completion_tokens, r.requests, r.failed_requests) for r in qs}


def _assert_rollups_equal_spendlog():
    from billing.models import SpendByModel, SpendByOwner, SpendByTeam, SpendLog
    from billing.rollups import COARSE

    assert {m for m, _ in COARSE} == {SpendByModel, SpendByTeam, SpendByOwner}
    for model, columns in COARSE:
        assert _sums(model.objects.all(), columns) == _sums(SpendLog.objects.all(), columns), model.__name__


def test_each_coarse_rollup_equals_spendlog_summed_at_its_grain(traffic):
    from billing.models import SpendByModel

    _assert_rollups_equal_spendlog()
    # Two days × two models.
    assert SpendByModel.objects.count() == 4


def test_rollups_follow_new_spend_on_an_already_rolled_up_day_and_a_rerun_changes_nothing(traffic):
    from billing.models import SpendByOwner, SpendByTeam
    from billing.services import daily_spend_rollup, spend_record_batch

    before = _sums(SpendByTeam.objects.all(), ("team_id", "organization_id", "model"))
    late = spend_event(key=traffic["keys"][2], team=traffic["sales"], cost="0.5", model="gpt-4o",
                       when=DAY1 + dt.timedelta(hours=3))
    late["organization_id"] = traffic["org"].pk
    spend_record_batch(events=[late])
    assert daily_spend_rollup() == [DAY1.date()]
    _assert_rollups_equal_spendlog()
    after = _sums(SpendByTeam.objects.all(), ("team_id", "organization_id", "model"))
    grown = (DAY1.date(), traffic["sales"].pk, traffic["org"].pk, "gpt-4o")
    assert after[grown][0] == before[grown][0] + Decimal("0.5")
    owners = SpendByOwner.objects.count()
    assert daily_spend_rollup() == []
    _assert_rollups_equal_spendlog()
    assert SpendByOwner.objects.count() == owners


def test_dailyspend_written_directly_reaches_reports_at_the_next_read(traffic):
    """A bulk import (or restored backup) writes DailySpend itself; the coarse rollups catch up."""
    from billing import reports
    from billing.models import DailySpend, SpendByModel

    day = dt.date(2026, 2, 1)
    DailySpend.objects.create(day=day, key=traffic["keys"][0], team=traffic["research"], model="imported",
                              cost=Decimal("7"), requests=3, prompt_tokens=30, completion_tokens=3)
    rows = reports.spend_report(group_by=["model"], start=day, end=day)
    assert [(r["model"], r["spend"], r["api_requests"]) for r in rows] == [("imported", Decimal("7"), 3)]
    assert SpendByModel.objects.get(day=day).cost == Decimal("7")


@pytest.mark.parametrize("group_by", [["day"], ["model"], ["team"], ["organization"], ["api_key"], ["user"],
                                      ["project"], ["team", "model"], ["key", "model"], ["day", "team"]])
def test_report_from_rollups_equals_report_from_dailyspend(traffic, group_by):
    from billing import reports
    from billing.models import DailySpend

    start, end = DAY1.date(), DAY2.date()
    got = reports.spend_report(group_by=group_by, start=start, end=end)
    columns = list(dict.fromkeys(reports.GROUPS[g] for g in group_by))
    expected = (DailySpend.objects.filter(day__gte=start, day__lte=end).order_by().values(*columns)
                .annotate(spend=Sum("cost"), api_requests=Sum("requests"), failed=Sum("failed_requests"),
                          tokens=Sum("prompt_tokens")))
    want = {tuple(r[c].isoformat() if c == "day" else r[c] for c in columns):
            (r["spend"], r["api_requests"], r["failed"], r["tokens"]) for r in expected}
    assert {tuple(r[c] for c in columns): (r["spend"], r["api_requests"], r["failed_requests"], r["prompt_tokens"])
            for r in got} == want
    assert len(got) == len(want) > 0


def test_reports_read_the_smallest_rollup_that_has_the_columns():
    from billing import reports
    from billing.models import DailySpend, SpendByModel, SpendByOwner, SpendByTeam

    assert reports._rollup_for({"model"}) is SpendByModel
    assert reports._rollup_for({"team_id", "model"}) is SpendByTeam
    assert reports._rollup_for({"key_id", "team_id", "user_id", "organization_id"}) is SpendByOwner
    assert reports._rollup_for({"key_id", "model"}) is DailySpend


def test_scoped_totals_and_top_models_equal_dailyspend(traffic):
    """A team admin's scope names team, organization and user: the owner rollup or DailySpend answer it."""
    from billing import reports
    from billing.models import DailySpend

    scope = Q(team_id__in=[traffic["research"].pk]) | Q(organization_id__in=[]) | Q(user_id=-1)
    start, end = DAY1.date(), DAY2.date()
    totals = reports.totals(scope=scope, start=start, end=end)
    research = DailySpend.objects.filter(team=traffic["research"])
    assert totals["cost"] == research.aggregate(c=Sum("cost"))["c"]
    assert totals["requests"] == research.aggregate(n=Sum("requests"))["n"] == 8
    assert totals["keys"] == 2
    models = {r["model"]: r["cost"] for r in reports.top(by="model", scope=scope, start=start, end=end)}
    assert models == {r["model"]: r["c"] for r in research.order_by().values("model").annotate(c=Sum("cost"))}
