"""Fixtures for cross-session memory: deployments on the fake provider, a project with memory on, and
helpers that drive /v1 in this process and settle what the request path queued."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from tests.factories import make_key

SUMMARIZER_PRICE = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}


def post_in_process(path: str, body: dict | None, key: str, headers: dict[str, str] | None = None):
    """One request through Django's test client on its own event loop, closing the loop's clients after."""
    from asgiref.sync import async_to_sync
    from django.test import AsyncClient

    from gateway import http

    async def call():
        try:
            return await AsyncClient().post(path, json.dumps(body) if body is not None else "",
                                            content_type="application/json",
                                            headers={"authorization": f"Bearer {key}", **(headers or {})})
        finally:
            await http.close_clients()

    return async_to_sync(call)()


def chat(key: str, text: str, *, session: str | None, user: str | None = None, model: str = "memory-echo",
         **extra):
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    if user is not None:
        body["user"] = user
    return post_in_process("/v1/chat/completions", body, key,
                           {"x-llmur-session-id": session} if session is not None else None)


def answer_of(response) -> str:
    return json.loads(response.content)["choices"][0]["message"]["content"]


def settle_spend() -> None:
    """Write what the request path queued (the Redis spend stream, or this process's batch)."""
    from billing.connections import redis_configured
    from billing.queue import drain
    from billing.writer import writer

    if redis_configured():
        drain(max_seconds=10)
    writer.flush_sync()


def summarize(scope: str, subject: str, session: str) -> int | None:
    """What the close endpoint's task does (drain the spend queue, then summarize), run here."""
    from gateway.tasks import memory_summarize

    settle_spend()
    return memory_summarize.run(scope, subject, session)


def new_session() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def memory_world(fake_provider, transactional_db):
    """Deployments (an echo chat model, a summarizer, an Anthropic echo), and two projects with memory on."""
    from accounts.models import Project, Team
    from gateway.models import ModelDeployment
    from gateway.registry import deployments_changed

    v1 = f"{fake_provider.url}/v1"
    ModelDeployment.objects.create(deployment_id="memory-echo", model_name="memory-echo", provider="openai",
                                   litellm_params={"model": "openai/mock-echo", "api_base": v1})
    ModelDeployment.objects.create(deployment_id="memory-summarizer", model_name="memory-summarizer",
                                   provider="openai", model_info=SUMMARIZER_PRICE,
                                   litellm_params={"model": "openai/fake-summary", "api_base": v1})
    ModelDeployment.objects.create(deployment_id="memory-claude-echo", model_name="memory-claude-echo",
                                   provider="anthropic",
                                   litellm_params={"model": "anthropic/mock-echo", "api_base": fake_provider.url})
    deployments_changed()
    team = Team.objects.create(name="memory-team")
    settings = {"enabled": True, "summarizer_model": "memory-summarizer", "max_injected_tokens": 500}
    project = Project.objects.create(name="memory-project", team=team, memory=settings)
    other_project = Project.objects.create(name="memory-other", team=team, memory=settings)
    plain_project = Project.objects.create(name="memory-off", team=team)
    key = make_key(team=team, project=project)
    return {
        "team": team, "project": project, "key": key.plaintext, "key_row": key.row,
        "other_key": make_key(team=team, project=other_project).plaintext, "other_project": other_project,
        "plain_key": make_key(team=team, project=plain_project).plaintext, "scope": f"project:{project.pk}",
    }


def project_spend(project) -> Decimal:
    project.refresh_from_db()
    return project.spend
