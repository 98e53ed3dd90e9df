"""Opt-in request/response logging: on for one team only, redacted, stored off the request path, purged."""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import openai
import pytest

from tests.conftest import start_gateway
from tests.factories import make_key
from tests.roadmap.conftest import CeleryWorkers, wait_until

SECRET_KEY = "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789"
CARD = "4111 1111 1111 1111"              # Luhn-valid: redacted
NOT_A_CARD = "4111 1111 1111 1112"        # fails the Luhn check: kept
PROMPT = (f"My key is {SECRET_KEY}, mail me at jane.doe@example.com, card {CARD}, order {NOT_A_CARD}, "
          "header Authorization: Bearer abcdefghij.klmnopqrstu.vwxyz0123")


@pytest.fixture(scope="module")
def stack(django_db_setup, fake_provider):
    import redis
    from django.conf import settings

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()   # before any worker binds its queues
    workers = CeleryWorkers({"application_secret": settings.SECRET_KEY, "log_level": "warning"}, count=1)
    gateway = start_gateway({"model_list": [{"model_name": "mock-gpt", "litellm_params": {
        "model": "openai/mock-gpt", "api_base": f"{fake_provider.url}/v1"}}]})
    yield gateway, workers
    gateway.stop()
    workers.stop()


@pytest.mark.django_db(transaction=True)
def test_logging_on_for_one_team_records_its_requests_redacted_and_nothing_for_others(stack):
    from accounts.models import Project, Team
    from gateway.models import RequestLog

    gateway, workers = stack
    logged_team = Team.objects.create(name="logged", log_requests=True)
    quiet_team = Team.objects.create(name="quiet")
    quiet_project = Project.objects.create(name="quiet-project", team=quiet_team)
    logged_key, logged = make_key(key_alias="logged", team=logged_team)
    quiet_key, quiet = make_key(key_alias="quiet", team=quiet_team, project=quiet_project)
    messages = [{"role": "user", "content": PROMPT}]
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=logged_key, max_retries=0)
    plain = client.chat.completions.with_raw_response.create(model="mock-gpt", messages=messages, max_tokens=3)
    stream = client.chat.completions.with_raw_response.create(model="mock-gpt", messages=messages, max_tokens=2,
                                                              stream=True)
    streamed_text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
    other = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=quiet_key, max_retries=0)
    for _ in range(3):
        other.chat.completions.create(model="mock-gpt", messages=messages, max_tokens=2)

    rows = wait_until(lambda: list(RequestLog.objects.order_by("created_at")) if RequestLog.objects.count() >= 2
                      else None, timeout=15)
    assert rows, (f"request log rows missing ({RequestLog.objects.count()}):\nWORKER " + workers.output()[-1500:]
                  + "\nGATEWAY " + gateway.output()[-3000:])
    assert {r.request_id for r in rows} == {plain.headers["x-request-id"], stream.headers["x-request-id"]}
    for row in rows:
        assert (row.key_id, row.team_id, row.model, row.http_status) == (logged.pk, logged_team.pk, "mock-gpt", 200)
        stored = row.request_body + row.response_body
        for secret in (SECRET_KEY, "jane.doe@example.com", CARD, "abcdefghij.klmnopqrstu", logged_key):
            assert secret not in stored
        for marker in ("[REDACTED_API_KEY]", "[REDACTED_EMAIL]", "[REDACTED_CARD]", "Bearer [REDACTED_TOKEN]"):
            assert marker in row.request_body
        assert NOT_A_CARD in row.request_body   # a number that is no card number stays readable
        assert json.loads(row.request_body)["model"] == "mock-gpt"
    plain_row = next(r for r in rows if not r.stream)
    assert json.loads(plain_row.response_body)["choices"][0]["message"]["content"] == "lorem " * 3
    assert next(r for r in rows if r.stream).response_body == streamed_text == "lorem " * 2
    # The quiet team's requests were served and billed, but nothing of them is logged.
    assert not RequestLog.objects.filter(key_id=quiet.pk).exists()
    assert not RequestLog.objects.filter(team_id=quiet_team.pk).exists()


@pytest.mark.db_matrix
@pytest.mark.django_db
def test_purge_task_removes_rows_past_the_retention_period():
    from django.conf import settings

    from gateway.models import RequestLog
    from gateway.tasks import request_log_purge

    now = datetime.now(timezone.utc)
    retention = settings.LLMUR.config.request_logging.retention_days
    for name, age in (("old-1", retention + 1), ("old-2", retention * 3), ("fresh", retention - 1), ("new", 0)):
        RequestLog.objects.create(request_id=name, created_at=now - timedelta(days=age, minutes=1),
                                  call_type="chat", model="m", request_body="{}")
    assert request_log_purge() == 2
    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == ["fresh", "new"]
    assert request_log_purge() == 0


def test_redaction_patterns():
    from gateway.request_log import redact

    text = ("keys sk-ant-api03-abcdefghijklmnop AKIAIOSFODNN7EXAMPLE ghp_0123456789abcdefghijklmnopqrstuvwxyz; "
            "jwt eyJhbGciOi.eyJzdWIiOiIx.c2lnbmF0dXJl; cards 5555-5555-5555-4444 378282246310005; "
            "ids 1234567890123 2026-11-28 +1 555 0100; bob@mail.co.uk")
    out = redact(text)
    assert out == ("keys [REDACTED_API_KEY] [REDACTED_API_KEY] [REDACTED_API_KEY]; jwt [REDACTED_TOKEN]; "
                   "cards [REDACTED_CARD] [REDACTED_CARD]; ids 1234567890123 2026-11-28 +1 555 0100; "
                   "[REDACTED_EMAIL]")
