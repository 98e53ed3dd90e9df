"""GET /v1/models and /v1/models/{id}: the model groups (and aliases) a key may use."""
from __future__ import annotations

import time
from typing import Any

from django.http import HttpResponse

from gateway import aliases, auth, registry
from gateway.context import RequestContext
from gateway.pipeline import allowed_model_names, authorize
from gateway.providers.base import dumps
from gateway.request_ids import request_id_for
from gateway.responses import error_response, json_response
from llmur.core.errors import LlmurError

# OpenAI's model objects carry a creation time; the gateway reports when this process loaded them.
_STARTED = int(time.time())


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _STARTED, "owned_by": "llmur"}


async def _principal(request):
    return await auth.authenticate(auth.key_from_headers(request.META))


def _json(data: Any, request_id: str) -> HttpResponse:
    return json_response(dumps(data), {"x-request-id": request_id})


def access_groups(names: list[str], reg: registry.Registry) -> list[str]:
    """The access groups (model_info.access_groups, LiteLLM's) of the deployments behind these model names."""
    found = {group for name in names for dep in reg.group(name)
             for group in (dep.model_info.get("access_groups") or []) if isinstance(group, str)}
    return sorted(found)


async def models_list(request) -> HttpResponse:
    """?only_model_access_groups=true lists the access groups of the key's models instead (LiteLLM's flag)."""
    request_id = request_id_for(request.META)
    try:
        principal = await _principal(request)
        reg = await registry.get()
        names = allowed_model_names(principal, reg)
        if request.GET.get("only_model_access_groups", "").lower() in ("true", "1"):
            names = access_groups(names, reg)
        else:
            names += aliases.visible_aliases(names)
    except LlmurError as error:
        return error_response(error, anthropic=False, request_id=request_id)
    return _json({"object": "list", "data": [_model_object(name) for name in names]}, request_id)


async def models_retrieve(request, model_id: str) -> HttpResponse:
    request_id = request_id_for(request.META)
    try:
        principal = await _principal(request)
        ctx = RequestContext(request_id=request_id, call_type="models", model=aliases.resolve(principal, model_id),
                             body={}, principal=principal)
        authorize(ctx, await registry.get())
    except LlmurError as error:
        return error_response(error, anthropic=False, request_id=request_id)
    return _json(_model_object(model_id), request_id)
