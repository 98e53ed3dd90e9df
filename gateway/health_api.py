"""GET /health: every deployment checked, listed as healthy or unhealthy, as LiteLLM's /health does.

Master key only: the answer names upstream bases and models. A deployment cooling down after
failures is reported unhealthy from the shared cooldown set without calling it; every other one
gets one cheap real call (a one-token chat completion, or a one-word embedding for deployments
whose model_info.mode is "embedding"), all in parallel and each bounded by HEALTH_TIMEOUT_S.
`?model=NAME` checks one model group. Health calls never count toward cooldowns.
"""
from __future__ import annotations

import asyncio
from typing import Any

from django.http import HttpResponse

from gateway import auth, pipeline, registry, upstream
from gateway.context import RequestContext
from gateway.providers.base import dumps
from gateway.routing.state import get_state
from llmur.core.errors import LlmurError, shown

HEALTH_TIMEOUT_S = 10.0
_PING = {"chat": {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
         "embedding": {"input": "ping"}}


def _describe(dep: registry.Deployment) -> dict[str, Any]:
    """What an operator needs to recognise the deployment; never its credentials."""
    described = {"id": dep.id, "model_name": dep.model_name, "model": f"{dep.provider}/{dep.model}"}
    if dep.api_base:
        described["api_base"] = dep.api_base
    if dep.api_version:
        described["api_version"] = dep.api_version
    return described


async def _check(dep: registry.Deployment, cooldowns: dict[str, float]) -> tuple[dict[str, Any], str | None]:
    """(description, None) when the deployment answered, else (description, why not)."""
    described = _describe(dep)
    if dep.id in cooldowns:
        described["cooldown_remaining_s"] = round(cooldowns[dep.id], 1)
        return described, f"cooling down after repeated failures ({cooldowns[dep.id]:.0f} s left)"
    call_type = "embedding" if dep.model_info.get("mode") == "embedding" else "chat"
    ctx = RequestContext(request_id="health", call_type=call_type, model=dep.model_name,
                         body={"model": dep.model_name, **_PING[call_type]})
    try:
        call = upstream.Call(ctx, dep)
        response = await asyncio.wait_for(upstream.open_response(call, stream=False), HEALTH_TIMEOUT_S)
        response.release()
    except LlmurError as error:
        return described, error.message
    except asyncio.TimeoutError:
        return described, f"no answer within {HEALTH_TIMEOUT_S:g} s"
    return described, None


async def health(request) -> HttpResponse:
    request_id = pipeline.request_id_for(request.META)
    try:
        if request.method != "GET":
            raise LlmurError(405, "invalid_request_error", "Use GET /health.", code="405")
        principal = await auth.authenticate(auth.key_from_headers(request.META))
        if not principal.is_master:
            raise LlmurError(403, "permission_error", "/health needs a master key: it lists every upstream "
                             "deployment.", code="403")
        reg = await registry.get()
        model = request.GET.get("model")
        if model is not None and not reg.group(model):
            raise LlmurError(404, "not_found_error", f"Model '{shown(model)}' does not exist on this gateway.",
                             param="model", code="404")
        deployments = [d for name in ([model] if model else reg.model_names) for d in reg.group(name)]
        cooldowns = await get_state().cooldowns()
    except LlmurError as error:
        return pipeline.error_response(error, anthropic=False, request_id=request_id)
    results = await asyncio.gather(*(_check(d, cooldowns) for d in deployments))
    healthy = [described for described, problem in results if problem is None]
    unhealthy = [described | {"error": problem} for described, problem in results if problem is not None]
    body = {"healthy_endpoints": healthy, "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy), "unhealthy_count": len(unhealthy)}
    response = HttpResponse(dumps(body), content_type="application/json")
    response["x-request-id"] = request_id
    return response
