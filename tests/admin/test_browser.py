"""The admin in real headless Chromium: sign in, create a team and a key, see the key once, call, see spend.

Debian's chromium driven by Playwright (Playwright cannot download its own browser here). Screenshots
of each step go to test-artifacts/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import openai
import pytest
from django.core.management import call_command
from django.db import connections

from accounts.models import Team, User, VirtualKey
from tests.conftest import start_gateway

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "a long browser test password"
# Skipped on a laptop without chromium; on CI (CI=true, which .ci/run sets and scripts/bootstrap then
# installs chromium for) they run, so a missing browser fails there instead of skipping silently.
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true",
                                    reason="needs Debian's chromium (scripts/bootstrap --test installs it on CI)")

pytestmark = [pytest.mark.django_db(transaction=True), needs_chromium]


def chromium_launch(playwright):
    """The machine's Chromium, headless and quiet (no sandbox: tests may run as root)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=[
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"])


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, fake_provider):
    config = {"model_list": [{"model_name": "mock-gpt",
                              "litellm_params": {"model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1"},
                              "model_info": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}}],
              "router_settings": {"num_retries": 0}}
    with django_db_blocker.unblock():
        gateway = start_gateway(config)
    yield gateway
    gateway.stop()


@pytest.fixture
def page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls between browser steps are
    # ordinary blocking calls made while no coroutine runs.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = chromium_launch(p)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        yield context.new_page()
        # ORM calls made while Playwright ran used a connection of their own; close it before the
        # test database is dropped.
        connections.close_all()
        context.close()
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)


def test_operator_creates_a_team_and_key_calls_and_sees_spend_on_the_dashboard(server, page):
    User.objects.create_superuser("operator", "operator@example.com", PASSWORD)

    page.goto(f"{server.url}/admin/login/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#spend-chart")
    shot(page, "1-dashboard-empty")

    page.goto(f"{server.url}/admin/accounts/team/add/")
    page.fill("#id_name", "browser-team")
    page.fill("#id_max_budget", "10")
    page.click("input[name=_save]")
    page.wait_for_selector("text=was added successfully")
    team = Team.objects.get(name="browser-team")

    page.goto(f"{server.url}/admin/accounts/virtualkey/add/")
    page.fill("#id_key_alias", "browser-key")
    page.select_option("#id_team", str(team.pk))
    page.check("input[name=allowed_models][value='mock-gpt']")
    page.click("input[name=_save]")
    page.wait_for_selector("#new-key")
    plaintext = page.input_value("#new-key")
    assert plaintext.startswith("sk-")
    page.click("#copy-key")
    page.wait_for_function("document.getElementById('copy-status').textContent.length > 0")
    shot(page, "2-key-created")

    key = VirtualKey.objects.get(key_alias="browser-key")
    page.goto(f"{server.url}/admin/accounts/virtualkey/{key.pk}/change/")
    assert plaintext not in page.content() and key.display in page.content()
    page.goto(f"{server.url}/admin/accounts/virtualkey/")
    assert plaintext not in page.content()
    shot(page, "3-key-list")

    client = openai.OpenAI(api_key=plaintext, base_url=f"{server.url}/v1")
    for i in range(3):
        client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": f"call {i}"}])
    # The worker's part: record the spend events and roll them up into DailySpend for the dashboard.
    deadline = time.monotonic() + 15
    while not VirtualKey.objects.filter(pk=key.pk, spend__gt=0).exists():
        assert time.monotonic() < deadline, "spend was not recorded"
        call_command("process_spend", verbosity=0)
        time.sleep(0.2)
    call_command("process_spend", verbosity=0)

    page.goto(f"{server.url}/admin/")
    page.wait_for_function("window.llmurSpendChart && window.llmurSpendChart.values.length === 30")
    values = page.evaluate("window.llmurSpendChart.values")
    assert values[-1] > 0 and sum(values[:-1]) == 0
    assert "browser-key" in page.inner_text("#dash-top-keys") and "browser-team" in page.inner_text("#dash-top-teams")
    assert "mock-gpt" in page.inner_text("#dash-top-models")
    shot(page, "4-dashboard-with-spend")

    page.goto(f"{server.url}/admin/accounts/team/{team.pk}/change/")
    assert "browser-key" in page.content() and "of $10.00" in page.content()
    shot(page, "5-team-page")
