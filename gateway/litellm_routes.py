"""LiteLLM's request shapes that are routing, not a new API: comma-separated batch models and Azure paths.

Batch models: `"model": "gpt-4o,claude-sonnet"` on chat completions asks every named model at once
and answers a JSON list with one completion per model, in the order given (LiteLLM's "return all
responses"). Every model must be one the key may use, checked before any is called; each is then
served as its own request (own llmur request id, the batch's x-request-id with `-<n>` appended as its
client request id; own limits and spend), so budgets and
rate limits count each. A model that fails has its OpenAI error object in its place; when all
fail, the first failure is the answer. Streaming is refused (a list cannot be streamed), and so
is a batch with an Idempotency-Key (the key names one request).

Azure paths: `/openai/deployments/{deployment}/chat/completions` (and `/completions`,
`/embeddings`), which the Azure OpenAI SDKs call, serve the model group named by the deployment
segment, as LiteLLM does (it wins over a `model` in the body); the `api-version` query is ignored.
"""
from __future__ import annotations

import asyncio
import re
from typing import Any

from django.http import HttpResponse

from gateway import aliases, auth, pipeline, registry, schemas
from gateway.context import RequestContext
from gateway.providers.base import dumps, loads
from llmur.core.errors import LlmurError

MAX_BATCH_MODELS = 10
_BATCH_MODEL = re.compile(rb'"model"\s*:\s*"[^"]*,')


class _Request:
    """The client's request with another body (and request id), for one pass through the pipeline."""

    def __init__(self, request: Any, body: bytes, meta: dict[str, Any]):
        self._request, self.body, self.META = request, body, meta

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def is_batch(raw: bytes) -> bool:
    """Cheap test on the raw body: a comma inside the model string."""
    return b"," in raw and _BATCH_MODEL.search(raw) is not None


def _models(body: dict[str, Any]) -> list[str]:
    names = [name.strip() for name in str(body.get("model") or "").split(",")]
    names = list(dict.fromkeys(name for name in names if name))
    if not names:
        raise schemas.invalid("'model' must name at least one model.", "model")
    if len(names) > MAX_BATCH_MODELS:
        raise schemas.invalid(f"'model' names {len(names)} models; a batch may name at most {MAX_BATCH_MODELS}.",
                              "model")
    return names


async def _check_all(request: Any, body: dict[str, Any], names: list[str], request_id: str) -> None:
    """Refuse the whole batch (before calling anything) unless the key may use every model."""
    principal = await auth.authenticate(auth.key_from_headers(request.META))
    reg = await registry.get()
    for name in names:
        ctx = RequestContext(request_id=request_id, call_type="chat", model=aliases.resolve(principal, name),
                             body=body, principal=principal)
        pipeline.authorize(ctx, reg)


async def batch_chat(request: Any) -> HttpResponse:
    """Serve a comma-separated model list: one chat completion per model, answered as a JSON list."""
    request_id = pipeline.request_id_for(request.META)
    try:
        body = schemas.parse_body(request.body)
        if "," not in str(body.get("model") or ""):
            # is_batch matched a "model" key elsewhere in the body (a JSON schema, say): one model after all.
            return await pipeline.run(request, "chat")
        names = _models(body)
        if body.get("stream") is True:
            raise schemas.invalid("Streaming is not supported when 'model' names several models; send one "
                                  "request per model, or drop 'stream'.", "stream")
        if request.META.get("HTTP_IDEMPOTENCY_KEY"):
            raise schemas.invalid("An Idempotency-Key names one request; a 'model' list makes several. Send "
                                  "one request per model to use it.", "model")
        await _check_all(request, body, names, request_id)
    except LlmurError as error:
        return pipeline.error_response(error, anthropic=False, request_id=request_id)
    responses = await asyncio.gather(*(
        pipeline.run(_Request(request, dumps({**body, "model": name}),
                              {**request.META, "HTTP_X_REQUEST_ID": f"{request_id}-{index}"}), "chat")
        for index, name in enumerate(names, 1)))
    if all(response.status_code != 200 for response in responses):
        return responses[0]
    answers = [loads(response.content) for response in responses]
    return pipeline.json_response(dumps(answers), {"x-request-id": request_id})


async def azure_deployment(request: Any, call_type: str, deployment: str) -> HttpResponse:
    """An Azure-style path: the deployment segment names the model group."""
    try:
        body = schemas.parse_body(request.body)
    except LlmurError as error:
        return pipeline.error_response(error, anthropic=False, request_id=pipeline.request_id_for(request.META))
    body["model"] = deployment
    return await pipeline.run(_Request(request, dumps(body), request.META), call_type)
