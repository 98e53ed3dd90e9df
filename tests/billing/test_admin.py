"""Admin pages for SpendLog, DailySpend and ModelPrice: filters, scoping, read-only ledger."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.billing.conftest import spend_event
from tests.factories import SuperuserFactory, make_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def ledger():
    from accounts.models import Project, Team
    from billing.services import daily_spend_rollup, spend_record_batch

    research, sales = Team.objects.create(name="research"), Team.objects.create(name="sales")
    project = Project.objects.create(name="chatbot", team=research)
    research_key, sales_key = make_key(team=research, project=project).row, make_key(team=sales).row
    when = datetime(2026, 5, 4, 10, tzinfo=timezone.utc)
    events = [spend_event(key=research_key, team=research, when=when, request_id="req-research-1"),
              spend_event(key=research_key, team=research, when=when, model="gpt-4o-mini", request_id="req-research-2"),
              spend_event(key=sales_key, team=sales, when=when, request_id="req-sales-1")]
    events[0]["project_id"] = events[1]["project_id"] = project.pk
    spend_record_batch(events=events)
    daily_spend_rollup()
    return research, sales, project, research_key


def test_spend_log_filters_by_team_project_key_model_and_date(client, ledger):

    research, sales, project, key = ledger
    client.force_login(SuperuserFactory())
    url = "/admin/billing/spendlog/"
    page = client.get(url).content.decode()
    assert all(rid in page for rid in ("req-research-1", "req-research-2", "req-sales-1"))
    page = client.get(url, {"team__id__exact": research.pk}).content.decode()
    assert "req-research-1" in page and "req-sales-1" not in page
    page = client.get(url, {"project__id__exact": project.pk}).content.decode()
    assert "req-research-1" in page and "req-research-2" in page and "req-sales-1" not in page
    page = client.get(url, {"key__id__exact": key.pk, "model": "gpt-4o-mini"}).content.decode()
    assert "req-research-2" in page and "req-research-1" not in page
    page = client.get(url, {"started_at__year": 2026, "started_at__month": 5, "started_at__day": 4}).content.decode()
    assert "req-sales-1" in page
    page = client.get(url, {"started_at__year": 2026, "started_at__month": 5, "started_at__day": 5}).content.decode()
    assert "req-sales-1" not in page
    assert client.get(f"{url}add/").status_code == 403


def test_daily_spend_page_lists_rollups_by_team(client, ledger):

    research, sales, _, _ = ledger
    client.force_login(SuperuserFactory())
    response = client.get("/admin/billing/dailyspend/", {"team__id__exact": sales.pk})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_a_team_admin_sees_only_their_teams_spend(client, ledger):
    from accounts.models import TeamMembership, User

    research, sales, _, _ = ledger
    admin_user = User.objects.create_user("lead", "lead@example.com", "pw-123456789", is_staff=True)
    TeamMembership.objects.create(team=research, user=admin_user, role=TeamMembership.TeamRole.ADMIN)
    client.force_login(admin_user)
    page = client.get("/admin/billing/spendlog/").content.decode()
    assert "req-research-1" in page and "req-sales-1" not in page
    assert client.get("/admin/billing/modelprice/").status_code == 200
    assert client.get("/admin/billing/modelprice/add/").status_code == 403
