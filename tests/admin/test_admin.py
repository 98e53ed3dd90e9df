"""The admin as console, driven through Django's test client: keys shown once, actions, roles, dashboard, login."""
from __future__ import annotations

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.keys import key_digest, secret_decrypt
from accounts.models import AuditEntry, Project, Role, TeamMembership, User, VirtualKey
from accounts.policy import Actor
from billing.models import DailySpend
from gateway.models import ModelDeployment

BY = Actor.system("test")
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_cache(settings):
    # A fast hasher keeps the many logins here quick; hashing strength is not under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def root(db) -> Client:
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    assert client.login(username="root", password=PASSWORD)
    return client


def staff(username: str, role: str = Role.TEAM_ADMIN) -> Client:
    user = services.user_create(by=BY, username=username, role=role, password=PASSWORD, is_staff=True)
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def _inline_management(prefixes) -> dict:
    data = {}
    for prefix in prefixes:
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    return data


def test_creating_a_key_shows_the_plaintext_exactly_once(root):
    posted = root.post("/admin/accounts/virtualkey/add/", {"key_alias": "from-admin", "allowed_models": "gpt-4o",
                                                           "metadata": "{}", "max_budget": "5"})
    # Post/redirect/get: the key is shown by the page the POST redirects to.
    assert posted.status_code == 302 and "/virtualkey/created/" in posted["Location"]
    waiting = io.StringIO()
    call_command("dumpdata", stdout=waiting)   # between the POST and the GET the session holds it encrypted only
    response = root.get(posted["Location"])
    assert response.status_code == 200
    html = response.content.decode()
    plaintext = re.search(r'id="new-key" type="text" readonly value="(sk-[^"]+)"', html).group(1)
    assert 'id="copy-key"' in html and "no-store" in response["Cache-Control"]
    key = VirtualKey.objects.get()
    assert key.key_hash == key_digest(plaintext) and key.allowed_models == ["gpt-4o"]
    for url in ("/admin/accounts/virtualkey/", f"/admin/accounts/virtualkey/{key.pk}/change/"):
        page = root.get(url).content.decode()
        assert plaintext not in page and key.display in page
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert plaintext not in dump.getvalue() and plaintext not in waiting.getvalue()
    assert AuditEntry.objects.get(entity_type="virtualkey").source == "admin"
    # A reload of the page shows no key and makes none.
    again = root.get(posted["Location"]).content.decode()
    assert 'id="key-already-shown"' in again and plaintext not in again and VirtualKey.objects.count() == 1


def test_bulk_block_and_unblock_actions(root):
    keys = [services.key_create(by=BY, key_alias=f"k{i}")[0] for i in range(3)]
    ids = [str(k.pk) for k in keys[:2]]
    root.post("/admin/accounts/virtualkey/", {"action": "block_selected", "_selected_action": ids})
    assert sorted(VirtualKey.objects.filter(blocked=True).values_list("key_alias", flat=True)) == ["k0", "k1"]
    root.post("/admin/accounts/virtualkey/", {"action": "unblock_selected", "_selected_action": ids[:1]})
    assert list(VirtualKey.objects.filter(blocked=True).values_list("key_alias", flat=True)) == ["k1"]
    assert AuditEntry.objects.filter(action="block").count() == 2


def test_team_page_shows_members_keys_projects_and_spend_against_budget(root):
    team = services.team_create(by=BY, name="search", max_budget=10)
    user = services.user_create(by=BY, username="ana")
    TeamMembership.objects.create(team=team, user=user)
    key, _ = services.key_create(by=BY, team=team, key_alias="search-prod", max_budget=4)
    services.project_create(by=BY, name="ranker", team=team)
    team.spend = Decimal("2.5")
    team.save(update_fields=["spend"])
    html = root.get(f"/admin/accounts/team/{team.pk}/change/").content.decode()
    for text in ("ana", "search-prod", key.display, "ranker", "$2.50 of $10.00 (25%)"):
        assert text in html, text
    key_html = root.get(f"/admin/accounts/virtualkey/{key.pk}/change/").content.decode()
    assert "$0.00 of $4.00 (0%)" in key_html


def test_team_admin_sees_and_changes_only_their_team(db):
    team_a = services.team_create(by=BY, name="a")
    team_b = services.team_create(by=BY, name="b")
    client = staff("lead")
    TeamMembership.objects.create(team=team_a, user=User.objects.get(username="lead"),
                                  role=TeamMembership.TeamRole.ADMIN)
    key_a, _ = services.key_create(by=BY, team=team_a, key_alias="key-a")
    key_b, _ = services.key_create(by=BY, team=team_b, key_alias="key-b")
    listing = client.get("/admin/accounts/virtualkey/").content.decode()
    assert "key-a" in listing and "key-b" not in listing
    assert client.get(f"/admin/accounts/virtualkey/{key_b.pk}/change/").status_code == 302  # "does not exist"
    client.post("/admin/accounts/virtualkey/", {"action": "block_selected",
                                                "_selected_action": [str(key_a.pk), str(key_b.pk)]})
    assert VirtualKey.objects.get(pk=key_a.pk).blocked and not VirtualKey.objects.get(pk=key_b.pk).blocked
    assert client.get(f"/admin/accounts/team/{team_b.pk}/change/").status_code == 302
    # The audit log is for proxy admins only.
    assert client.get("/admin/accounts/auditentry/").status_code == 403


def test_team_admin_key_form_offers_only_their_teams_and_enforces_the_budget(db):
    team_a = services.team_create(by=BY, name="a", max_budget=3)
    services.team_create(by=BY, name="b")
    client = staff("lead")
    TeamMembership.objects.create(team=team_a, user=User.objects.get(username="lead"),
                                  role=TeamMembership.TeamRole.ADMIN)
    form = client.get("/admin/accounts/virtualkey/add/").content.decode()
    assert ">a</option>" in form and ">b</option>" not in form
    response = client.post("/admin/accounts/virtualkey/add/", {"team": team_a.pk, "metadata": "{}", "max_budget": "9"})
    assert response.status_code == 200 and "above the max budget of team" in response.content.decode()
    assert VirtualKey.objects.count() == 0


def test_viewer_staff_cannot_change_anything(db):
    client = staff("watcher", role=Role.VIEWER)
    key, _ = services.key_create(by=BY, user=User.objects.get(username="watcher"), key_alias="mine")
    assert client.get("/admin/accounts/virtualkey/add/").status_code == 403
    page = client.get(f"/admin/accounts/virtualkey/{key.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


def test_admin_changes_are_audited_and_the_log_is_read_only(root):
    team = services.team_create(by=BY, name="ops")
    data = {"name": "ops-renamed", "allowed_models": "", "metadata": "{}",
            **_inline_management(["memberships", "projects", "keys"])}
    assert root.post(f"/admin/accounts/team/{team.pk}/change/", data).status_code == 302
    entry = AuditEntry.objects.filter(entity_type="team", action="update").get()
    assert (entry.actor, entry.source, entry.before["name"], entry.after["name"]) == ("root", "admin", "ops",
                                                                                      "ops-renamed")
    page = root.get(f"/admin/accounts/auditentry/{entry.pk}/change/").content.decode()
    assert "ops-renamed" in page and 'name="_save"' not in page
    assert root.get("/admin/accounts/auditentry/add/").status_code == 403


def test_deployment_added_in_admin_has_its_key_encrypted(root):
    secret = "sk-provider-secret-from-admin"
    response = root.post("/admin/gateway/modeldeployment/add/", {
        "model_name": "admin-model", "upstream_model": "openai/gpt-4o", "api_base": "http://127.0.0.1:9/v1",
        "api_key": secret, "extra_params": "{}", "model_info": "{}", "is_active": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    row = ModelDeployment.objects.get(model_name="admin-model")
    assert secret_decrypt(row.litellm_params["api_key"]["encrypted"]) == secret
    listing = root.get("/admin/gateway/modeldeployment/").content.decode()
    assert "admin-model" in listing and secret not in listing
    assert secret not in root.get(f"/admin/gateway/modeldeployment/{row.pk}/change/").content.decode()


def test_dashboard_shows_spend_over_time_top_spenders_and_budgets(root):
    team = services.team_create(by=BY, name="big-spender", max_budget=10)
    key, _ = services.key_create(by=BY, team=team, key_alias="hot-key", max_budget=5)
    today = timezone.now().date()
    for days_ago, cost in ((0, "1.25"), (2, "0.75")):
        DailySpend.objects.create(day=today - dt.timedelta(days=days_ago), key=key, team=team, model="gpt-4o",
                                  cost=Decimal(cost), requests=3, prompt_tokens=100, completion_tokens=50)
    html = root.get("/admin/").content.decode()
    assert 'id="spend-chart"' in html and "chart-4.6.1.umd.min.js" in html
    assert "$2.00" in html and "hot-key" in html and "big-spender" in html and "gpt-4o" in html
    chart = re.search(r'<script id="spend-chart-data" type="application/json">(.*?)</script>', html).group(1)
    assert '"values": [' in chart and "1.25" in chart and "0.75" in chart
    narrow = root.get("/admin/", {"start": today.isoformat(), "end": today.isoformat()}).content.decode()
    assert "$1.25" in narrow
    assert root.get("/static/llmur/chart-4.6.1.umd.min.js").status_code == 200


def test_login_is_rate_limited_after_repeated_failures(db):
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client()
    for _ in range(5):
        assert client.post("/admin/login/", {"username": "root", "password": "wrong"}).status_code == 200
    blocked = client.post("/admin/login/", {"username": "root", "password": PASSWORD})
    assert blocked.status_code == 429 and "Too many failed sign-in attempts" in blocked.content.decode()
    assert blocked["Retry-After"] == "300"
    # Another client address guessing the same account is refused too.
    other = Client(REMOTE_ADDR="10.9.9.9")
    assert other.post("/admin/login/", {"username": "root", "password": PASSWORD}).status_code == 429
    cache.clear()
    assert Client().post("/admin/login/", {"username": "root", "password": PASSWORD}).status_code == 302


def test_model_page_shows_deployments_with_price_and_last_hour_health(root):
    import uuid

    from billing.models import ModelPrice, SpendLog

    ModelDeployment.objects.create(deployment_id="cfg-1", model_name="gpt-4o", provider="openai",
                                   litellm_params={"model": "openai/gpt-4o"}, source="config")
    ModelPrice.objects.update_or_create(model="gpt-4o", defaults={"input_cost_per_token": Decimal("0.0000025"),
                                                                  "output_cost_per_token": Decimal("0.00001")})
    now = timezone.now()
    for status in ("success", "failure"):
        SpendLog.objects.create(request_id=uuid.uuid4().hex, model="gpt-4o", deployment="cfg-1", status=status,
                                latency_ms=100, started_at=now, ended_at=now)
    html = root.get("/admin/gateway/modeldeployment/").content.decode()
    assert "$2.50 / $10.00" in html and "2 req, 1 failed</a><br><small>100 ms mean" in html
    # Config deployments are changed in the file, not here.
    row = ModelDeployment.objects.get(deployment_id="cfg-1")
    page = root.get(f"/admin/gateway/modeldeployment/{row.pk}/change/").content.decode()
    assert 'name="_save"' not in page


def test_user_added_in_admin_gets_a_role_and_an_audit_entry(root):
    response = root.post("/admin/accounts/user/add/", {"username": "newop", "email": "newop@example.com",
                                                        "role": "team_admin", "password1": PASSWORD,
                                                        "password2": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:1500]
    user = User.objects.get(username="newop")
    assert user.role == "team_admin" and user.check_password(PASSWORD)
    entry = AuditEntry.objects.get(entity_type="user", action="create")
    assert entry.after["password"] == "***" and entry.actor == "root"


def test_admin_pages_of_other_apps_are_audited_too(root):
    from billing.models import ModelPrice

    response = root.post("/admin/billing/modelprice/add/", {"model": "house-model", "provider": "openai",
                                                           "input_per_million": "1",
                                                           "output_per_million": "2"})
    assert response.status_code == 302, response.content.decode()[:1500]
    price = ModelPrice.objects.get(model="house-model")
    assert (price.input_cost_per_token, price.output_cost_per_token) == (Decimal("0.000001"), Decimal("0.000002"))
    entry = AuditEntry.objects.get(entity_type="modelprice")
    assert (entry.action, entry.actor, entry.after["model"]) == ("create", "root", "house-model")
    root.post(f"/admin/billing/modelprice/{price.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.filter(entity_type="modelprice", action="delete").count() == 1


def test_team_admin_dashboard_counts_only_their_teams_spend(db):
    team_a = services.team_create(by=BY, name="alpha")
    team_b = services.team_create(by=BY, name="bravo")
    client = staff("lead")
    TeamMembership.objects.create(team=team_a, user=User.objects.get(username="lead"),
                                  role=TeamMembership.TeamRole.ADMIN)
    today = timezone.now().date()
    for team, cost in ((team_a, "0.40"), (team_b, "9.00")):
        key, _ = services.key_create(by=BY, team=team, key_alias=f"{team.name}-key")
        DailySpend.objects.create(day=today, key=key, team=team, model="gpt-4o", cost=Decimal(cost), requests=1)
    html = client.get("/admin/").content.decode()
    assert "$0.40" in html and "alpha-key" in html
    assert "bravo" not in html and "$9.00" not in html


def test_memberships_and_credentials_have_their_own_pages(root):
    from accounts.models import ProjectCredential

    team = services.team_create(by=BY, name="crew")
    user = services.user_create(by=BY, username="ana")
    project = services.project_create(by=BY, name="app", team=team)
    response = root.post("/admin/accounts/teammembership/add/", {"team": team.pk, "user": user.pk, "role": "admin"})
    assert response.status_code == 302
    assert TeamMembership.objects.get(team=team, user=user).role == "admin"
    secret = "sk-provider-key-typed-in-admin"
    response = root.post("/admin/accounts/projectcredential/add/", {"project": project.pk, "provider": "openai",
                                                                    "api_key": secret})
    assert response.status_code == 302
    credential = ProjectCredential.objects.get()
    assert secret_decrypt(credential.encrypted_api_key) == secret and credential.display == "…dmin"
    for url in ("/admin/accounts/projectcredential/", f"/admin/accounts/projectcredential/{credential.pk}/change/",
                "/admin/accounts/auditentry/"):
        assert secret not in root.get(url).content.decode()
    assert root.get("/admin/accounts/organizationmembership/").status_code == 200


# --------------------------------------------------------------------------- the admin writes through the services

def _team_form(team, **fields) -> dict:
    return {"name": team.name, "organization": team.organization_id or "", "allowed_models": "", "metadata": "{}",
            "aliases": "{}", **_inline_management(["memberships", "projects", "keys"]), **fields}


def test_team_edit_in_the_admin_keeps_inside_the_organizations_budget(root):
    org = services.organization_create(by=BY, name="org", max_budget=100)
    team = services.team_create(by=BY, name="ops", organization=org, max_budget=10)
    response = root.post(f"/admin/accounts/team/{team.pk}/change/", _team_form(team, max_budget="500"))
    assert response.status_code == 200 and "above the max budget of organization" in response.content.decode()
    team.refresh_from_db()
    assert team.max_budget == 10


def test_team_edit_in_the_admin_sets_the_next_budget_reset(root):
    team = services.team_create(by=BY, name="ops")
    before = timezone.now()
    response = root.post(f"/admin/accounts/team/{team.pk}/change/", _team_form(team, budget_duration="1d"))
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.budget_duration == "1d"
    assert before + dt.timedelta(days=1) <= team.budget_reset_at <= timezone.now() + dt.timedelta(days=1)


def test_project_above_its_teams_budget_is_a_form_error(root):
    team = services.team_create(by=BY, name="ops", max_budget=5)
    response = root.post("/admin/accounts/project/add/", {
        "name": "p", "team": team.pk, "is_active": "on", "allowed_models": "", "metadata": "{}", "max_budget": "9",
        **_inline_management(["credentials", "keys"])})
    assert response.status_code == 200 and "above the max budget of team" in response.content.decode()
    assert not Project.objects.exists()


def test_members_added_on_the_team_page_are_audited_as_admin_writes(root):
    team = services.team_create(by=BY, name="ops")
    ana = services.user_create(by=BY, username="ana")
    data = _team_form(team, **{"memberships-TOTAL_FORMS": "1", "memberships-0-user": ana.pk,
                               "memberships-0-role": "admin", "memberships-0-team": team.pk})
    assert root.post(f"/admin/accounts/team/{team.pk}/change/", data).status_code == 302
    assert TeamMembership.objects.get(team=team, user=ana).role == "admin"
    entry = AuditEntry.objects.get(entity_type="teammembership", action="create")
    assert (entry.source, entry.actor) == ("admin", "root")


def test_a_password_set_in_the_admin_is_audited(root):
    ana = services.user_create(by=BY, username="ana")
    response = root.post(f"/admin/accounts/user/{ana.pk}/password/", {"password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 302
    assert User.objects.get(pk=ana.pk).check_password(PASSWORD)
    entry = AuditEntry.objects.filter(entity_type="user", action="update").get()
    assert entry.source == "admin" and entry.after["password"] == "***"


def test_a_superuser_is_listed_and_shown_as_a_proxy_admin(root):
    services.user_create(by=BY, username="ana")
    listing = root.get("/admin/accounts/user/").content.decode()
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr>.*?>(root|ana)</a>.*?class="field-role_label">([^<]*)<',
                                                         listing, re.DOTALL)}
    assert rows == {"root": "Proxy admin (superuser)", "ana": "Internal user"}
    root_page = root.get(f"/admin/accounts/user/{User.objects.get(username='root').pk}/change/").content.decode()
    assert re.search(r"Effective role:</label>\s*<div class=\"readonly\">Proxy admin \(superuser\)</div>", root_page)


def test_a_budget_under_a_cent_is_shown_with_the_digits_it_needs(root):
    key, _ = services.key_create(by=BY, key_alias="tiny", max_budget=Decimal("0.002"))
    VirtualKey.objects.filter(pk=key.pk).update(spend=Decimal("0.0021"))
    for url in ("/admin/accounts/virtualkey/", f"/admin/accounts/virtualkey/{key.pk}/change/"):
        html = root.get(url).content.decode()
        assert "$0.0021 of $0.002 (105%)" in html and "$0.00 (" not in html, url


def test_alerts_on_a_budget_that_never_resets_show_no_reset_instead_of_1970(root):
    from billing.alerts import NO_PERIOD
    from billing.models import BudgetAlert

    never = BudgetAlert.objects.create(entity_kind="key", entity_id=1, entity_name="forever", threshold="100%",
                                       threshold_amount=Decimal("0.002"), spend=Decimal("0.0021"),
                                       max_budget=Decimal("0.002"), period_start=NO_PERIOD)
    BudgetAlert.objects.create(entity_kind="team", entity_id=2, entity_name="monthly", threshold="50%",
                               threshold_amount=Decimal(5), spend=Decimal("5.5"), max_budget=Decimal(10),
                               period_start=dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
    listing = root.get("/admin/billing/budgetalert/").content.decode()
    periods = re.findall(r'class="field-period">([^<]*)<', listing)
    assert sorted(periods) == ["Nov. 1, 2026, midnight", "no reset"]
    assert "1970" not in listing
    assert re.findall(r'class="field-(?:threshold_in_usd|spend_in_usd|max_budget_in_usd)">([^<]*)<', listing) == [
        "$5.00", "$5.50", "$10.00", "$0.002", "$0.0021", "$0.002"]
    detail = root.get(f"/admin/billing/budgetalert/{never.pk}/change/").content.decode()
    assert "no reset" in detail and "1970" not in detail
