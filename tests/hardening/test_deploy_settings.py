"""Production settings: `manage.py check --deploy` is clean, and what it asks for works behind TLS."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest
import yaml

from tests.conftest import ROOT, TEST_MASTER_KEY, start_gateway

PRODUCTION = {
    "application_secret": "a-long-random-application-secret-only-for-this-check-0123456789abcdef",
    "master_keys": ["sk-master-deploy-check-0123456789"],
    "allowed_hosts": ["llmur.example.com", "127.0.0.1"],
    "https": {"enabled": True, "trust_forwarded_proto": True, "hsts_include_subdomains": True, "hsts_preload": True},
}


def _check(config: dict, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in ("LLMUR_MASTER_KEY", "DATABASE_URL", "REDIS_URL")}
    env.update(LLMUR_CONFIGURATION=str(path), LLMUR_VAR_DIR=str(tmp_path / "var"))
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = _check(PRODUCTION, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_a_site_not_configured_for_tls(tmp_path):
    """The check is real: without the https block it names what is missing."""
    result = _check({k: v for k, v in PRODUCTION.items() if k != "https"}, tmp_path)
    assert result.returncode != 0
    assert "SESSION_COOKIE_SECURE" in result.stderr + result.stdout


def _get(url: str, headers: dict | None = None):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        response = opener.open(urllib.request.Request(url, headers=headers or {}), timeout=10)
        return response.status, response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


@pytest.mark.django_db(transaction=True)
def test_behind_tls_cookies_are_secure_hsts_is_sent_and_probes_are_not_redirected(django_db_setup, fake_provider):
    config = {**PRODUCTION, "master_keys": [TEST_MASTER_KEY], "allowed_hosts": ["*"]}
    config.pop("application_secret")
    server = start_gateway(config)
    try:
        status, headers = _get(f"{server.url}/admin/login/")
        assert status == 301 and headers["Location"].startswith("https://"), headers
        status, headers = _get(f"{server.url}/admin/login/", {"X-Forwarded-Proto": "https"})
        assert status == 200
        assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
        assert "Secure" in headers["Set-Cookie"] and "HttpOnly" not in headers["Set-Cookie"].split("csrftoken")[0]
        for probe in ("/health/liveliness", "/health/readiness"):
            assert _get(f"{server.url}{probe}")[0] in (200, 503)
        assert _get(f"{server.url}/v1/models", {"Authorization": f"Bearer {TEST_MASTER_KEY}"})[0] == 200
    finally:
        server.stop()
