"""Admin pages of the roadmap features: alerts with delivery status, team alert settings, request logs."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from django.test import Client

from accounts import services
from accounts.models import Role, Team, User
from accounts.policy import Actor

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def login(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=PASSWORD)
    return client


@pytest.fixture
def root(db) -> Client:
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    return login("root")


@pytest.fixture
def team_admin(db) -> Client:
    services.user_create(by=Actor.system("test"), username="lead", role=Role.TEAM_ADMIN, password=PASSWORD,
                         is_staff=True)
    return login("lead")


def test_alerts_are_listed_with_delivery_status_for_proxy_admins_only(root, team_admin):
    from billing.models import AlertDelivery, BudgetAlert

    alert = BudgetAlert.objects.create(entity_kind="team", entity_id=7, entity_name="research", threshold="80%",
                                       threshold_amount=Decimal("8"), spend=Decimal("8.2"), max_budget=Decimal("10"),
                                       period_start=datetime(2026, 11, 1, tzinfo=timezone.utc))
    AlertDelivery.objects.create(alert=alert, channel="webhook", target="https://hooks.example.com/x", status="dead",
                                 attempts=5, last_error="webhook answered HTTP 500")
    page = root.get("/admin/billing/budgetalert/")
    assert page.status_code == 200
    assert "research" in page.content.decode() and "webhook: dead (gave up) (5)" in page.content.decode()
    detail = root.get(f"/admin/billing/budgetalert/{alert.pk}/change/").content.decode()
    assert "webhook answered HTTP 500" in detail
    assert team_admin.get("/admin/billing/budgetalert/").status_code == 403


def test_team_alert_settings_are_validated(root):
    from billing.models import TeamAlertSetting

    team = Team.objects.create(name="ops")
    bad = root.post("/admin/billing/teamalertsetting/add/", {
        "team": team.pk, "enabled": "on", "thresholds": '[50, "lots"]', "webhook_url": "https://hooks.example.com/t",
        "email_to": "ops@example.com, not-an-address"})
    text = bad.content.decode()
    assert bad.status_code == 200 and "percentages of max_budget" in text and "not-an-address" in text
    good = root.post("/admin/billing/teamalertsetting/add/", {
        "team": team.pk, "enabled": "on", "thresholds": "[90, 50]", "webhook_url": "https://hooks.example.com/t",
        "email_to": "ops@example.com"})
    assert good.status_code == 302
    setting = TeamAlertSetting.objects.get(team=team)
    assert setting.thresholds == [50, 90]


def test_request_logs_are_readable_by_proxy_admins_and_searchable_by_request_id(root, team_admin):
    from gateway.models import RequestLog

    for request_id in ("req-wanted-1", "req-other-2"):
        RequestLog.objects.create(request_id=request_id, created_at=datetime.now(timezone.utc), call_type="chat",
                                  model="gpt", request_body='{"messages": "[REDACTED_EMAIL]"}')
    page = root.get("/admin/gateway/requestlog/", {"q": "req-wanted-1"}).content.decode()
    assert "req-wanted-1" in page and "req-other-2" not in page
    wanted = RequestLog.objects.get(request_id="req-wanted-1")
    assert "[REDACTED_EMAIL]" in root.get(f"/admin/gateway/requestlog/{wanted.pk}/change/").content.decode()
    assert team_admin.get("/admin/gateway/requestlog/").status_code == 403
    assert team_admin.get(f"/admin/gateway/requestlog/{wanted.pk}/change/").status_code in (302, 403)
