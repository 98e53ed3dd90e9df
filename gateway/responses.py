"""Rendering a /v1 answer: JSON bodies with their length, errors in OpenAI's or Anthropic's shape,
and the headers every answer carries (request ids, the deployment that answered)."""
from __future__ import annotations

from django.http import HttpResponse

from gateway.context import RequestContext
from gateway.providers.base import dumps
from gateway.request_ids import id_headers
from llmur.core.errors import LlmurError


def json_response(content: bytes, headers: dict[str, str], status: int = 200) -> HttpResponse:
    response = HttpResponse(content, status=status, content_type="application/json")
    response["Content-Length"] = str(len(content))
    for name, value in headers.items():
        response[name] = value
    return response


def error_response(error: LlmurError, *, anthropic: bool, request_id: str = "",
                   headers: dict[str, str] | None = None) -> HttpResponse:
    """The error in OpenAI's (or Anthropic's) shape; headers carry the request ids, else request_id does."""
    body = error.anthropic_body() if anthropic else error.openai_body()
    return json_response(dumps(body), {**(headers or {"x-request-id": request_id}), **error.headers},
                         status=error.status)


def answer_headers(ctx: RequestContext) -> dict[str, str]:
    headers = {**id_headers(ctx.request_id, ctx.client_request_id), **ctx.response_headers}
    if ctx.deployment_id:
        headers["x-llmur-model-deployment"] = ctx.deployment_id
    region = (getattr(ctx.deployment, "litellm_params", None) or {}).get("region_name")
    if region:
        headers["x-litellm-model-region"] = str(region)   # LiteLLM's header; the end user's region (end_users)
    return headers
