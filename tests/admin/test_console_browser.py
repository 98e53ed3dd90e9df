"""Each operator task of the console in real Chromium, at a laptop's 1440x900 and a phone's 390x844.

What a task needs must be on screen, not just in the HTML: its bounding box inside the viewport's
width, and no page scrolling sideways. Screenshots go to test-artifacts/ (git-ignored); the ones
docs/admin.md shows are copied to docs/img/ when LLMUR_DOCS_SCREENSHOTS=1.
"""
from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from accounts import services
from accounts.models import User, VirtualKey
from accounts.policy import Actor
from billing.models import RefusalCount, SpendLog
from billing.services import daily_spend_rollup, spend_record_batch
from gateway.models import ModelDeployment
from tests.admin.test_browser import PASSWORD, chromium_launch, needs_chromium
from tests.billing.conftest import spend_event

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_IMG = ROOT / "docs" / "img"
LAPTOP, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}
VIEWPORTS = [pytest.param(LAPTOP, id="1440x900"), pytest.param(PHONE, id="390x844")]

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]


@pytest.fixture
def world(live_server, settings):
    """A team's gateway: 3 models (one failing), keys (one over budget, one blocked, one expired), spend, refusals."""
    # The console runs in this process (live_server): a fast hasher spares two deliberately slow password
    # hashes per test (the operator's creation and sign-in); hashing is not what these tests are about.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    by = Actor.system("test")
    team = services.team_create(by=by, name="research", max_budget=Decimal(50))
    keys = {
        "app-backend": services.key_create(by=by, team=team, key_alias="app-backend", max_budget=Decimal(20))[0],
        "notebook": services.key_create(by=by, team=team, key_alias="notebook", max_budget=Decimal("0.50"))[0],
        "old-ci": services.key_create(by=by, team=team, key_alias="old-ci")[0],
        "intern": services.key_create(by=by, team=team, key_alias="intern")[0],
    }
    VirtualKey.objects.filter(pk=keys["old-ci"].pk).update(expires_at=timezone.now() - dt.timedelta(days=2))
    VirtualKey.objects.filter(pk=keys["intern"].pk).update(blocked=True)
    for name, upstream in (("gpt-4.1", "openai/gpt-4.1"), ("claude-sonnet", "anthropic/claude-sonnet-4"),
                           ("llama-local", "ollama/llama3")):
        ModelDeployment.objects.create(deployment_id=f"cfg-{name}", model_name=name, provider=upstream.split("/")[0],
                                       litellm_params={"model": upstream})
    now = timezone.now()
    events = []
    for i in range(40):
        key = keys["app-backend"] if i % 3 else keys["notebook"]
        model = ("gpt-4.1", "claude-sonnet")[i % 2]
        event = spend_event(key=key, team=team, model=model, cost="0.0123", prompt=12_345, completion=678,
                            when=now - dt.timedelta(hours=i * 3))
        events.append(event | {"deployment": f"cfg-{model}"})
    for i in range(6):
        event = spend_event(key=keys["app-backend"], team=team, model="llama-local", cost="0",
                            when=now - dt.timedelta(minutes=10 * i + 5), success=False)
        events.append(event | {"deployment": "cfg-llama-local", "http_status": 502,
                               "error": "Upstream deployment cfg-llama-local failed with HTTP 502: model 'llama3' "
                                        "not found, try pulling it first (api_key=sk-live-abcdef0123456789XYZ)"})
    spend_record_batch(events=events)
    daily_spend_rollup()
    VirtualKey.objects.filter(pk=keys["notebook"].pk).update(spend=Decimal("0.55"))
    hour = now.replace(minute=0, second=0, microsecond=0)
    RefusalCount.objects.create(hour=hour, bucket=str(keys["notebook"].pk), key=keys["notebook"],
                                key_display=keys["notebook"].display, reason="over budget", status=429, count=17,
                                last_at=now, samples=[{"at": now.isoformat(), "status": 429, "request_id": "r-1",
                                                       "model": "gpt-4.1", "message": "key 'notebook' budget "
                                                       "exceeded: spend $0.55 of max_budget $0.50"}])
    RefusalCount.objects.create(hour=hour, bucket="unknown", reason="unknown key", status=401, count=240,
                                last_at=now, samples=[])
    return {"team": team, "keys": keys, "url": live_server.url}


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module; each test signs in in a context of its own (its own cookies)."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread for as long as Chromium runs; the ORM
    # calls between browser steps (and the test database's flushes) are ordinary blocking calls.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        ARTIFACTS.mkdir(exist_ok=True)
        with sync_playwright() as p:
            chromium = chromium_launch(p)
            yield chromium
            connections.close_all()
            chromium.close()


@pytest.fixture(autouse=True)
def _contexts_closed(browser):
    """What a test opened (its signed-in context and pages) is closed after it: the next starts clean."""
    yield
    for context in browser.contexts:
        context.close()


def open_console(browser, world, viewport):
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(f"{world['url']}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#llmur-dashboard")
    return page


def shot(page, name: str, viewport, docs: str | None = None) -> None:
    path = ARTIFACTS / f"console-{name}-{viewport['width']}.png"
    page.screenshot(path=str(path), full_page=viewport is PHONE)
    if docs and viewport is LAPTOP and os.environ.get("LLMUR_DOCS_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMG / docs), type="png")


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    assert width <= inner, f"{page.url} scrolls sideways: {width} px of content in {inner} px"
    overflowing = page.evaluate("""Array.from(document.querySelectorAll('#result_list, .llmur-table'))
        .filter(t => t.getBoundingClientRect().right > window.innerWidth + 1).length""")
    assert overflowing == 0, f"a table on {page.url} runs past the screen's edge"


def on_screen(page, selector: str) -> None:
    """The element is rendered and lies within the viewport's width (scrolled into view vertically)."""
    element = page.locator(selector).first
    element.scroll_into_view_if_needed()
    box = element.bounding_box()
    assert box is not None and box["width"] > 0, f"{selector} is not rendered on {page.url}"
    width = page.evaluate("window.innerWidth")
    assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, f"{selector} is off screen: {box} in {width} px"


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_dashboard_shows_spend_and_each_row_opens_the_filtered_logs(browser, world, viewport):
    page = open_console(browser, world, viewport)
    page.wait_for_function("window.llmurSpendChart !== undefined")
    for selector in ("#dash-total-spend", "#dash-top-keys", "#dash-top-models", "#dash-budgets", "#llmur-time-zone"):
        on_screen(page, selector)
    assert page.inner_text("#dash-total-spend").startswith("$")
    assert "6 failed" in page.inner_text("#dash-top-models")   # llama-local's failures, on the dashboard
    no_sideways_scroll(page)
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "dashboard", viewport, docs="admin-dashboard.png")
    page.click("#dash-top-keys a:has-text('app-backend')")
    page.wait_for_selector("#result_list")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() > 0 and "notebook" not in page.inner_text("#result_list")
    on_screen(page, "#list-totals")
    no_sideways_scroll(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_keys_list_shows_name_spend_and_status_and_blocking_a_key_shows_it_blocked(browser, world, viewport):
    page = open_console(browser, world, viewport)
    page.goto(f"{world['url']}/admin/accounts/virtualkey/")
    for selector in ("th.column-name", "th.column-status", "th.column-spend_vs_budget", "td.field-status"):
        on_screen(page, selector)
    listing = page.inner_text("#result_list")
    assert "Expired" in listing and "Blocked" in listing and "Active" in listing
    assert "$0.55 of $0.50" in listing
    no_sideways_scroll(page)
    shot(page, "keys", viewport, docs="admin-keys.png")
    row = page.locator("#result_list tr", has_text="app-backend")
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "block_selected")
    page.click("button[name=index]")
    page.wait_for_selector("text=Blocked 1 key(s).")
    blocked = page.locator("#result_list tr", has_text="app-backend").locator("td.field-status")
    assert blocked.inner_text() == "Blocked"
    on_screen(page, "#result_list tr:has-text('app-backend') td.field-status")
    assert VirtualKey.objects.get(key_alias="app-backend").blocked


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_create_a_key_with_a_budget_for_a_team_and_a_reload_makes_no_second_key(browser, world, viewport):
    page = open_console(browser, world, viewport)
    page.goto(f"{world['url']}/admin/accounts/virtualkey/add/")
    page.fill("#id_key_alias", f"new-{viewport['width']}")
    page.select_option("#id_team", str(world["team"].pk))
    page.check("input[name=allowed_models][value='gpt-4.1']")
    page.select_option("#id_budget_duration", "30d")
    page.fill("#id_max_budget", "75")   # above the team's $50: refused on the field, in plain words
    page.click("input[name=_save]")
    error = page.locator(".field-max_budget .errorlist")
    on_screen(page, ".field-max_budget .errorlist")
    assert "max budget" in error.inner_text() and "$50.00" in error.inner_text() and "max_budget" not in \
        error.inner_text()
    page.fill("#id_max_budget", "10")
    page.click("input[name=_save]")
    page.wait_for_selector("#new-key")
    on_screen(page, "#new-key")
    no_sideways_scroll(page)
    shot(page, "key-created", viewport)
    page.reload()
    page.wait_for_selector("#key-already-shown")
    assert VirtualKey.objects.filter(key_alias=f"new-{viewport['width']}").count() == 1
    key = VirtualKey.objects.get(key_alias=f"new-{viewport['width']}")
    assert key.allowed_models == ["gpt-4.1"] and key.budget_duration == "30d" and key.max_budget == 10


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_model_health_names_the_failing_model_since_when_and_the_upstreams_error(browser, world, viewport):
    page = open_console(browser, world, viewport)
    page.goto(f"{world['url']}/admin/health/")
    first = page.locator("#model-health tbody tr").first
    assert "llama-local" in first.inner_text() and "6 (100%)" in first.inner_text()
    on_screen(page, "#model-health tbody tr:first-child .llmur-error")
    error_text = page.inner_text("#model-health tbody tr:first-child .llmur-error")
    assert "not found, try pulling it first" in error_text and "sk-live" not in error_text
    assert "cfg-" not in first.locator("td").first.inner_text()   # deployments by name, not id
    no_sideways_scroll(page)
    shot(page, "model-health", viewport, docs="admin-model-health.png")
    on_screen(page, "#refusal-summary")
    assert "over budget" in page.inner_text("#refusal-summary")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_refusals_say_why_a_client_was_refused(browser, world, viewport):
    page = open_console(browser, world, viewport)
    page.goto(f"{world['url']}/admin/billing/refusalcount/")
    on_screen(page, "td.field-reason")
    listing = page.inner_text("#result_list")
    assert "over budget" in listing and "unknown key" in listing and "240" in listing
    no_sideways_scroll(page)
    shot(page, "refusals", viewport)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_who_spent_what_this_week_with_totals_and_csv(browser, world, viewport):
    page = open_console(browser, world, viewport)
    page.goto(f"{world['url']}/admin/billing/spendlog/?period=7d")
    on_screen(page, "#list-totals")
    totals = page.inner_text("#list-totals")
    assert "$" in totals and "tokens in" in totals
    on_screen(page, "td.field-cost_usd")
    no_sideways_scroll(page)
    shot(page, "spend-logs", viewport)
    with page.expect_download() as download:
        page.click("#export-csv")
    lines = Path(download.value.path()).read_text().splitlines()
    in_week = SpendLog.objects.filter(started_at__gte=timezone.now() - dt.timedelta(days=7)).count()
    assert lines[0].startswith("started_at,request_id") and 0 < len(lines) - 1 <= in_week + 1
    page.goto(f"{world['url']}/admin/billing/dailyspend/?period=30d")
    on_screen(page, "#list-totals")
    no_sideways_scroll(page)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_usage_page_of_a_key_shows_spend_and_requests_over_time(browser, world, viewport):
    page = open_console(browser, world, viewport)
    key = world["keys"]["app-backend"]
    page.goto(f"{world['url']}/admin/accounts/virtualkey/{key.pk}/change/")
    page.click("a:has-text('Spend and requests per day')")
    page.wait_for_selector("#usage-days")
    for selector in ("#usage-total-spend", "#usage-total-requests", "#spend-chart"):
        on_screen(page, selector)
    assert page.inner_text("#usage-total-spend").startswith("$")
    no_sideways_scroll(page)
    shot(page, "usage", viewport)


LISTS = [
    "/admin/accounts/virtualkey/", "/admin/accounts/team/", "/admin/accounts/project/", "/admin/accounts/user/",
    "/admin/accounts/organization/", "/admin/billing/spendlog/", "/admin/billing/dailyspend/",
    "/admin/billing/modelprice/", "/admin/billing/refusalcount/", "/admin/billing/budgetalert/",
    "/admin/billing/teamalertsetting/", "/admin/gateway/modeldeployment/", "/admin/gateway/requestlog/",
    "/admin/accounts/auditentry/", "/admin/accounts/teammembership/", "/admin/health/",
]


def test_no_page_scrolls_sideways_at_1440_or_shows_internals(browser, world):
    page = open_console(browser, world, LAPTOP)
    team, key = world["team"], world["keys"]["app-backend"]
    deployment = ModelDeployment.objects.get(deployment_id="cfg-llama-local")
    pages = [*LISTS, f"/admin/accounts/team/{team.pk}/change/", f"/admin/accounts/virtualkey/{key.pk}/change/",
             f"/admin/gateway/modeldeployment/{deployment.pk}/change/",
             f"/admin/billing/spendlog/{SpendLog.objects.filter(status='failure').first().pk}/change/"]
    for url in pages:
        page.goto(f"{world['url']}{url}")
        assert page.locator("#content").count() == 1, url
        no_sideways_scroll(page)
        text = page.inner_text("#content")
        assert "object (" not in text and "None" not in text.split(), url
        assert "Litellm_params" not in text and "Rpm limit" not in text and "Http status" not in text, url
