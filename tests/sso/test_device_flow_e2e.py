"""The whole agent sign-in against a real server: codes, a person signing in to the admin with a password and
approving in a browser session, the agent collecting its key and using it with the openai SDK on the fake provider."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import openai
import pytest
import requests

from accounts import selectors, services
from accounts.keys import key_digest
from accounts.models import Role, TeamMembership, VirtualKey
from accounts.policy import Actor
from tests.conftest import mock_model_list, start_gateway

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, fake_provider):
    with django_db_blocker.unblock():
        handle = start_gateway({"model_list": mock_model_list(fake_provider.url), "sso": {"device_flow": {
            "enabled": True, "key_duration": "1d", "rpm_limit": 100, "interval_seconds": 2}}})
    yield handle
    handle.stop()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


@pytest.mark.django_db(transaction=True)
def test_an_agent_signs_in_and_its_key_works_with_the_openai_sdk(server):
    by = Actor.system("test setup")
    team = services.team_create(by=by, name="agents-e2e", max_budget=10)
    alice = services.user_create(by=by, username="alice", role=Role.INTERNAL_USER, password="a-long-pass-phrase-7",
                                 is_staff=True)
    TeamMembership.objects.create(team=team, user=alice)

    codes = requests.post(f"{server.url}/sso/device/code", data={"client_id": "e2e-agent", "scope": "mock-gpt"},
                          timeout=10).json()
    assert codes["verification_uri"] == f"{server.url}/sso/device"

    browser = requests.Session()
    login = browser.get(codes["verification_uri_complete"], timeout=10)   # not signed in: the admin login
    assert "/admin/login/" in login.url
    page = browser.post(login.url, data={"username": "alice", "password": "a-long-pass-phrase-7",
                                         "csrfmiddlewaretoken": csrf_of(login.text)}, timeout=10)
    assert page.url == codes["verification_uri_complete"] and "e2e-agent" in page.text
    done = browser.post(codes["verification_uri"], data={
        "csrfmiddlewaretoken": csrf_of(page.text), "user_code": codes["user_code"], "decision": "approve",
        "scope": f"team:{team.pk}"}, timeout=10)
    assert 'id="device-approved"' in done.text, done.text

    token = requests.post(f"{server.url}/sso/device/token", data={
        "grant_type": GRANT, "device_code": codes["device_code"], "client_id": "e2e-agent"}, timeout=10).json()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=token["access_token"], max_retries=0)
    completion = client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=3)
    assert completion.choices[0].message.content == "lorem " * 3

    key = VirtualKey.objects.get(key_hash=key_digest(token["access_token"]))
    assert (key.user, key.team, key.rpm_limit, key.allowed_models) == (alice, team, 100, ["mock-gpt"])
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key=codes["device_code"], max_retries=0).models.list()


def docs_snippet() -> str:
    """The Python an agent uses, as docs/agent-sign-in.md shows it."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "agent-sign-in.md").read_text()
    return re.search(r"## What an agent does.*?```python\n(.*?)```", page, re.DOTALL).group(1)


@pytest.mark.django_db(transaction=True)
def test_the_documented_agent_code_signs_in_and_calls_a_model(server, tmp_path):
    alice = services.user_create(by=Actor.system("test setup"), username="alice", is_staff=True)
    code = docs_snippet().replace("https://llm.example.com", server.url).replace("gpt-4o-mini", "mock-gpt")
    script = tmp_path / "agent.py"
    script.write_text(code)
    # BROWSER=true: webbrowser.open runs `true URL` instead of a browser.
    agent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env={**os.environ, "BROWSER": "true"})
    try:
        first = agent.stdout.readline()
        user_code = re.search(r"and enter (\S+)", first).group(1)
        waiting = selectors.device_authorization_pending(user_code=user_code)
        services.device_approve(by=Actor.for_user(alice, "sso"), authorization=waiting, owners={})
        output, _ = agent.communicate(timeout=60)
    finally:
        agent.kill()
    assert agent.returncode == 0, first + output
    assert output.startswith("lorem lorem"), output     # the fake provider's answer, printed by the snippet
    assert VirtualKey.objects.get(key_alias="my-agent on laptop-7 (agent sign-in)").user == alice
