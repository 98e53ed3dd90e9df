"""database_configuration.replicas: spend reports read a replica; the hot path reads and writes the primary.

A second PostgreSQL database stands in for the replica: migrated (a copy of the migrated test database),
then given rows the primary does not have, so every answer shows which database it came from.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from tests.conftest import ROOT, chat_status, database_url_for_subprocess, mock_model_list, start_gateway
from tests.factories import make_key

pytestmark = [pytest.mark.serial, pytest.mark.django_db(transaction=True)]

_SEED_REPLICA = """
import datetime, django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")
django.setup()
from billing.models import SpendLog
now = datetime.datetime.now(datetime.timezone.utc)
for n in range(3):
    SpendLog.objects.create(request_id=f"replica-only-{n}", model="replica-only-model", cost="0.25",
                            prompt_tokens=10, completion_tokens=5, total_tokens=15, started_at=now, ended_at=now)
"""


def _get(url: str, key: str) -> tuple[int, object]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _admin_page(base: str, username: str, password: str, path: str) -> str:
    """Log in to the admin like a browser (CSRF cookie and token) and return the page at path."""
    import http.cookiejar
    import re
    from urllib.parse import urlencode

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = opener.open(f"{base}/admin/login/?next={path}", timeout=20).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login).group(1)
    form = urlencode({"csrfmiddlewaretoken": token, "username": username, "password": password, "next": path})
    request = urllib.request.Request(f"{base}/admin/login/?next={path}", data=form.encode(),
                                     headers={"Referer": f"{base}/admin/login/"})
    with opener.open(request, timeout=20) as response:
        assert response.geturl().endswith(path), response.geturl()
        return response.read().decode()


@pytest.fixture
def replica_url(migrated_postgres, tmp_path_factory):
    """A migrated PostgreSQL database beside the test database, holding three SpendLog rows of its own."""
    from django.db import connection

    name = f"{connection.settings_dict['NAME']}_replica"
    url = migrated_postgres(name)
    env = {k: v for k, v in os.environ.items() if k not in ("LLMUR_CONFIGURATION", "REDIS_URL")}
    env.update({"DATABASE_URL": url, "LLMUR_DATABASE_POOL": "off", "LLMUR_VAR_DIR": str(tmp_path_factory.mktemp("replica"))})
    seeded = subprocess.run([sys.executable, "-c", _SEED_REPLICA], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=180)
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    yield url
    migrated_postgres.drop(name)


def _replica_rows(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_reports_read_the_replica_while_keys_and_spend_use_the_primary(replica_url, fake_provider, redis_client,
                                                                         tmp_path):
    from accounts.models import User
    from billing.models import SpendLog

    # Only the primary has this key: the hot path's principal lookup must read the primary.
    key = make_key().plaintext
    config = {"model_list": mock_model_list(fake_provider.url),
              "database_configuration": {"replicas": [replica_url]}}
    server = start_gateway(config)
    try:
        assert chat_status(server.url, key, content="replica") == 200
        assert chat_status(server.url, key, content="replica") == 200

        # The spend writer (as a Celery worker would run it) writes to the primary.
        env = {k: v for k, v in os.environ.items() if k != "LLMUR_CONFIGURATION"}
        env.update({"DATABASE_URL": database_url_for_subprocess(), "LLMUR_VAR_DIR": str(tmp_path / "var"),
                    "LLMUR_CONFIGURATION": str(server.config_path)})
        drained = subprocess.run([sys.executable, "manage.py", "process_spend", "--no-rollup"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert drained.returncode == 0, drained.stderr[-3000:]
        primary_ids = set(SpendLog.objects.filter(model="mock-gpt").values_list("request_id", flat=True))
        assert len(primary_ids) == 2
        assert _replica_rows(replica_url, "SELECT count(*) FROM billing_spendlog WHERE model = 'mock-gpt'") == [(0,)]

        # /spend/logs answers from the replica: its own rows, not the primary's.
        status, logs = _get(f"{server.url}/spend/logs", server.master_key)
        assert status == 200, logs
        assert sorted(row["request_id"] for row in logs) == ["replica-only-0", "replica-only-1", "replica-only-2"]
        status, one = _get(f"{server.url}/spend/logs?request_id=replica-only-1", server.master_key)
        assert status == 200 and [row["model"] for row in one] == ["replica-only-model"]

        # The admin's ledger too, for a proxy admin who exists (with the session) only on the primary.
        User.objects.create_superuser("ha-admin", "ha@example.com", "ha-admin-password-1")
        page = _admin_page(server.url, "ha-admin", "ha-admin-password-1", "/admin/billing/spendlog/")
        assert "replica-only-0" in page
        assert not any(request_id in page for request_id in primary_ids)
    finally:
        server.stop()


def test_a_replica_of_another_engine_is_a_config_error(tmp_path):
    from llmur.config import ConfigError, load_config

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database_configuration": {
        "url": "postgresql://llmur@db:5432/llmur", "replicas": ["mysql://llmur:secret-pw@replica:3306/llmur"]}}))
    with pytest.raises(ConfigError) as raised:
        load_config(config, env={"LLMUR_VAR_DIR": str(tmp_path)})
    message = str(raised.value)
    assert "database_configuration.replicas[0]" in message and "same engine" in message
    assert "secret-pw" not in message


def test_replicas_resolve_from_urls_and_blocks(tmp_path):
    from llmur.config import load_config

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"database_configuration": {
        "url": "postgresql://llmur@db:5432/llmur",
        "replicas": ["postgresql://reader:pw@replica-1:5433/llmur",
                     {"engine": "postgres", "host": "replica-2", "database": "llmur", "username": "reader"}]}}))
    database = load_config(config, env={"LLMUR_VAR_DIR": str(tmp_path)}).database
    assert [(r.host, r.port, r.user, r.name) for r in database.replicas] == [
        ("replica-1", 5433, "reader", "llmur"), ("replica-2", 5432, "reader", "llmur")]
