"""Two sessions through a running llmur with the real openai and anthropic SDKs: the second starts
knowing what the first concluded (docs/memory.md's worked example, as a test).

On SQLite the server runs embedded (the close summarizes in-process); with Redis (the PostgreSQL
run) it queues the summarization for a Celery worker started here with the same configuration."""
from __future__ import annotations

import os

import anthropic
import openai
import pytest

from fakeprovider.answers import SUMMARY
from gateway.memory.inject import FRAME, HEADER
from tests.conftest import start_gateway
from tests.factories import make_key
from tests.memory.conftest import SUMMARIZER_PRICE, new_session, settle_spend
from tests.roadmap.conftest import CeleryWorkers, wait_until

pytestmark = pytest.mark.db_matrix


@pytest.fixture(scope="module")
def memory_gateway(django_db_setup, fake_provider):
    from django.conf import settings

    v1 = f"{fake_provider.url}/v1"
    config = {
        "model_list": [
            {"model_name": "assistant", "litellm_params": {"model": "openai/mock-echo", "api_base": v1}},
            {"model_name": "summarizer", "litellm_params": {"model": "openai/fake-summary", "api_base": v1},
             "model_info": SUMMARIZER_PRICE},
            {"model_name": "claude", "litellm_params": {"model": "anthropic/mock-echo",
                                                        "api_base": fake_provider.url}},
        ],
        "memory": {"enabled": True, "summarizer_model": "summarizer", "max_injected_tokens": 400},
    }
    workers = None
    if os.environ.get("REDIS_URL"):
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()   # before the worker binds its queues
        workers = CeleryWorkers({**config, "application_secret": settings.SECRET_KEY, "log_level": "warning"},
                                count=1)
    server = start_gateway(config)
    yield server
    server.stop()
    if workers is not None:
        workers.stop()


@pytest.mark.django_db(transaction=True)
def test_the_second_session_knows_what_the_first_concluded(memory_gateway):
    from accounts.models import Project, Team
    from billing.models import SpendLog
    from memory.models import MemorySummary

    team = Team.objects.create(name="sdk-memory")
    project = Project.objects.create(name="sdk-memory", team=team)
    key = make_key(team=team, project=project).plaintext
    client = openai.OpenAI(base_url=f"{memory_gateway.url}/v1", api_key=key, max_retries=0)
    first = new_session()
    reply = client.chat.completions.with_raw_response.create(
        model="assistant", user="alice", messages=[{"role": "user", "content": "Plan my May trip to Lisbon."}],
        extra_headers={"x-llmur-session-id": first})
    assert reply.headers[HEADER] == "0"

    closed = client.post(f"/memory/sessions/{first}/close", cast_to=object, body={"user": "alice"})
    assert closed["status"] == ("queued" if os.environ.get("REDIS_URL") else "summarized"), (closed, memory_gateway.output()[-3000:])
    summary = wait_until(lambda: MemorySummary.objects.filter(session_id=first).first(), timeout=60)
    assert summary is not None, "the session was not summarized"
    assert SpendLog.objects.get(request_id=summary.request_id).metadata == {"purpose": "memory"}

    second = client.chat.completions.with_raw_response.create(
        model="assistant", user="alice", messages=[{"role": "user", "content": "What should I pack?"}],
        extra_headers={"x-llmur-session-id": new_session()})
    assert second.headers[HEADER] == "1"
    text = second.parse().choices[0].message.content
    assert text.startswith(FRAME) and SUMMARY in text

    claude = anthropic.Anthropic(base_url=memory_gateway.url, api_key=key, max_retries=0)
    message = claude.messages.with_raw_response.create(
        model="claude", max_tokens=100, system="Be brief.", metadata={"user_id": "alice"},
        messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-llmur-session-id": new_session()}, extra_body={"user": "alice"})
    assert message.headers[HEADER] == "1"
    assert SUMMARY in message.parse().content[0].text

    # Another end user of the same project, and the opt-out, see nothing.
    for user, extra in (("bob", {}), ("alice", {"memory": False})):
        other = client.chat.completions.with_raw_response.create(
            model="assistant", user=user, messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-llmur-session-id": new_session()}, extra_body=extra)
        assert other.headers[HEADER] == "0"
        assert SUMMARY not in other.parse().choices[0].message.content
    settle_spend()


@pytest.mark.django_db(transaction=True)
def test_closing_a_session_with_memory_off_is_a_clear_400(memory_gateway):
    from accounts.models import Team

    team = Team.objects.create(name="sdk-no-memory", memory={"enabled": False})
    client = openai.OpenAI(base_url=f"{memory_gateway.url}/v1", api_key=make_key(team=team).plaintext, max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/memory/sessions/abc/close", cast_to=object, body={})
    assert "Memory is off for this key" in caught.value.message
