"""The ledger's admin pages at scale: filter choices from small tables, estimated counts, scoped choices."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from tests.billing.conftest import spend_event
from tests.factories import SuperuserFactory, make_key

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2026, 5, 4, 10, tzinfo=dt.timezone.utc)


@pytest.fixture
def ledger():
    from accounts.models import Team
    from billing.models import ModelPrice
    from billing.services import daily_spend_rollup, spend_record_batch
    from gateway.models import ModelDeployment

    research, sales = Team.objects.create(name="research"), Team.objects.create(name="sales")
    research_key, sales_key = make_key(team=research).row, make_key(team=sales).row
    research_key.key_alias, sales_key.key_alias = "research-key", "sales-key"
    research_key.save(update_fields=["key_alias"])
    sales_key.save(update_fields=["key_alias"])
    ModelPrice.objects.update_or_create(model="priced-only-model", defaults={"provider": "anthropic"})
    ModelDeployment.objects.create(deployment_id="dep-x", model_name="deployed-only-model", provider="azure",
                                   litellm_params={"model": "x"})
    events = [spend_event(key=research_key, team=research, when=WHEN, request_id=f"req-r-{i}") for i in range(3)]
    events.append(spend_event(key=sales_key, team=sales, when=WHEN, model="rolled-up-model", request_id="req-s-1"))
    spend_record_batch(events=events)
    daily_spend_rollup()
    return research, sales, research_key, sales_key


def _root(client):

    client.force_login(SuperuserFactory())


def test_spendlog_model_choices_are_the_models_with_spend_and_providers_come_from_deployments(client, ledger):
    _root(client)
    response = client.get("/admin/billing/spendlog/")
    assert response.status_code == 200
    page = response.content.decode()
    # Priced or deployed models nobody used are not offered (issue 21.3): only those in the rollups.
    assert "?model=rolled-up-model" in page and "?model=gpt-4o" in page
    assert "?model=priced-only-model" not in page and "?model=deployed-only-model" not in page
    assert "?provider=azure" in page and "?provider=anthropic" in page
    # No year drill-down links: date_hierarchy is gone, the date filter remains.
    assert "started_at__year" not in page and "started_at__gte" in page


def test_spendlog_filters_by_provider_and_exact_request_id(client, ledger):
    from billing.models import SpendLog

    SpendLog.objects.filter(request_id="req-r-0").update(provider="azure")
    _root(client)
    page = client.get("/admin/billing/spendlog/", {"provider": "azure"}).content.decode()
    assert "req-r-0" in page and "req-r-1" not in page
    page = client.get("/admin/billing/spendlog/", {"q": "req-s-1"}).content.decode()
    assert "req-s-1" in page and "req-r-0" not in page


def test_a_team_admin_is_offered_only_their_teams_keys_and_team(client, ledger):
    from accounts.models import TeamMembership, User

    research, sales, research_key, sales_key = ledger
    lead = User.objects.create_user("lead", "lead@example.com", "pw-123456789", is_staff=True)
    TeamMembership.objects.create(team=research, user=lead, role=TeamMembership.TeamRole.ADMIN)
    client.force_login(lead)
    for url in ("/admin/billing/spendlog/", "/admin/billing/dailyspend/"):
        response = client.get(url)
        assert response.status_code == 200
        page = response.content.decode()
        assert f"key__id__exact={research_key.pk}" in page and f"key__id__exact={sales_key.pk}" not in page
        assert f"team__id__exact={research.pk}" in page and f"team__id__exact={sales.pk}" not in page


def test_counts_are_exact_below_the_cap_and_capped_above_it(client, ledger, monkeypatch):
    from billing.admin.filters import EstimatedCountPaginator
    from billing.models import SpendLog

    _root(client)
    assert client.get("/admin/billing/spendlog/").context["cl"].result_count == 4
    research, *_ = ledger
    assert client.get("/admin/billing/spendlog/", {"team__id__exact": research.pk}).context["cl"].result_count == 3
    monkeypatch.setattr(EstimatedCountPaginator, "COUNT_CAP", 2)
    when = WHEN - dt.timedelta(days=1)
    SpendLog.objects.create(request_id=uuid.uuid4().hex, model="m", cost=Decimal(0), started_at=when, ended_at=when)
    assert client.get("/admin/billing/spendlog/", {"team__id__exact": research.pk}).context["cl"].result_count == 2
    response = client.get("/admin/billing/dailyspend/")
    assert response.status_code == 200 and response.context["cl"].result_count >= 2


def test_dashboard_shows_new_spend_at_once_despite_its_cache(client, ledger):
    from billing.services import daily_spend_rollup, spend_record_batch

    research, sales, research_key, _ = ledger
    _root(client)
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=30, second=0, microsecond=0)
    first = client.get("/admin/").context["dash_totals"]["requests"]
    again = client.get("/admin/").context["dash_totals"]["requests"]
    assert again == first
    spend_record_batch(events=[spend_event(key=research_key, team=research, when=today)])
    daily_spend_rollup()
    assert client.get("/admin/").context["dash_totals"]["requests"] == first + 1
