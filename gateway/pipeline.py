"""The request pipeline: authenticate → authorize → limits → route → call → account.

Each step reads and fills gateway.context.RequestContext, so the limits/spend and router work
plug in here without touching the handlers. `gateway.admission.settle(ctx)` runs exactly once for
every request `admit` let through — on success, on an upstream error or timeout, and when the
client goes away (for streams: when the response generator is closed or cancelled).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from django.http import HttpResponse

from billing import refusals
from gateway import (
    admission,
    aliases,
    auth,
    end_users,
    idempotency,
    registry,
    response_cache,
    router,
    schemas,
    streaming,
)
from gateway.context import RequestContext
from gateway.memory import inject as memory
from gateway.providers import anthropic_messages
from gateway.providers.base import EMBEDDING, MESSAGES, Answer, dumps
from gateway.relay import close_relay, open_stream, relay
from gateway.request_ids import (
    client_request_id,
    id_headers,
    new_request_id,
    request_id_for,  # noqa: F401 - llmur.api renders its errors with it
)
from gateway.responses import answer_headers, error_response, json_response
from gateway.settlement import settle
from gateway.upstream import call_once
from gateway.usage import note_response_id, usage_from
from llmur.core import metrics, observability
from llmur.core.errors import LlmurError, shown

logger = logging.getLogger("llmur.gateway.pipeline")

VALIDATORS: dict[str, Callable[[dict[str, Any]], str]] = {
    "chat": schemas.validate_chat, "completion": schemas.validate_completion,
    "embedding": schemas.validate_embedding, "messages": schemas.validate_messages,
}


# --------------------------------------------------------------------------- steps

def authorize(ctx: RequestContext, reg: registry.Registry) -> tuple[registry.Deployment, ...]:
    """The model group, if it exists and the key may use it."""
    principal = ctx.principal
    ctx.registry = reg
    group = reg.group(ctx.model)
    if principal is not None and not principal.may_use(ctx.model):
        if not group:
            raise _unknown_model(ctx.model)
        raise LlmurError(401, "key_model_access_denied", f"key not allowed to access model. This key is not "
                         f"allowed to use model '{shown(ctx.model)}'. GET /v1/models lists the models it may use.",
                         param="model", code="401")
    if not group:
        raise _unknown_model(ctx.model)
    return group


def _unknown_model(model: str) -> LlmurError:
    return LlmurError(404, "not_found_error", f"Model '{shown(model)}' does not exist on this gateway. "
                      "GET /v1/models lists the models your key can use.", param="model", code="404")


def allowed_model_names(principal, reg: registry.Registry) -> list[str]:
    names = reg.model_names
    if principal.allowed_models is None:
        return names
    return [name for name in names if principal.may_use(name)]


# --------------------------------------------------------------------------- the request

async def run(request, call_type: str) -> HttpResponse:
    """Serve one /v1 request of the given call type, keeping its answer when it carries an Idempotency-Key."""
    try:
        response = await _run(request, call_type)
    except BaseException:
        claim = getattr(request, "_llmur_idempotency", None)
        if claim is not None:
            await asyncio.shield(claim.release())
        raise
    claim = getattr(request, "_llmur_idempotency", None)
    if claim is not None:
        if response.status_code == 200 and not response.streaming:
            await claim.store(response.content, {name: value for name, value in response.items()
                                                 if name.lower() not in ("content-length", "content-type")})
        else:
            await claim.release()
    return response


async def _run(request, call_type: str) -> HttpResponse:
    anthropic = call_type == MESSAGES
    meta = request.META
    request_id, client_id = new_request_id(), client_request_id(meta)
    ids = id_headers(request_id, client_id)
    principal = None
    try:
        principal = await auth.authenticate(auth.key_from_headers(meta))
        raw = request.body
        body = schemas.parse_body(raw)
        model = aliases.resolve(principal, VALIDATORS[call_type](body))
        ctx = RequestContext(request_id=request_id, call_type=call_type, model=model, body=body,
                             stream=body.get("stream") is True and call_type != EMBEDDING,
                             client_request_id=client_id, principal=principal,
                             started_at=datetime.now(timezone.utc))
        ctx.body_bytes = len(raw)
        ctx.end_user = body.get("user") if isinstance(body.get("user"), str) else ""
        await end_users.check(ctx)
        if anthropic:
            ctx.client_headers = {"anthropic-version": meta.get("HTTP_ANTHROPIC_VERSION", ""),
                                  "anthropic-beta": meta.get("HTTP_ANTHROPIC_BETA", "")}
        authorize(ctx, await registry.get())
        if principal.memory is not None:
            await memory.prepare(ctx, meta)   # before the cache and admission: they see the injected body
        # Before admission: a replayed answer takes no rate-limit slot and costs nothing.
        claim = await idempotency.claim(ctx, meta.get(idempotency.HEADER), raw)
        if claim is not None and claim.replay is not None:
            return json_response(*idempotency.replay_parts(claim))
        request._llmur_idempotency = claim
        await admission.admit(ctx)
        metrics.request_started(ctx)
    except LlmurError as error:
        metrics.request_rejected(error, request_id, client_id)
        refusals.refusal_count(error=error, principal=principal, request_id=request_id)
        return error_response(error, anthropic=anthropic, headers=ids)
    # Admitted: from here on, settle exactly once however the request ends.
    hit = None
    try:
        if ctx.stream:
            call, first, parts = await _route(ctx, open_stream)
        else:
            # After authorization, so a cached answer never crosses a key's allow-list.
            hit = await response_cache.cache_lookup(ctx, meta.get("HTTP_CACHE_CONTROL"))
            if hit is None:
                call, answer = await _route(ctx, call_once)
    except LlmurError as error:
        ctx.success, ctx.http_status, ctx.error = False, error.status, error.message
        await settle(ctx)
        return error_response(error, anthropic=anthropic, headers=answer_headers(ctx))
    except asyncio.CancelledError:
        ctx.success, ctx.http_status = False, 499   # the client went away before the answer
        ctx.client_disconnected = True
        await settle(ctx)
        raise
    except Exception as exc:
        ctx.success, ctx.http_status, ctx.error = False, 500, f"Internal error in the gateway ({type(exc).__name__})."
        logger.exception("request %s failed", request_id)
        await settle(ctx)
        return error_response(LlmurError(500, "api_error", f"Internal error in the gateway; the request id is "
                                         f"{request_id}."), anthropic=anthropic, headers=ids)
    if ctx.stream:
        relayed = relay(ctx, call, first, parts)
        response = streaming.streaming_response(relayed, answer_headers(ctx))
        # Django closes its wrapper around the relay, not the relay itself, and a relay the client
        # left before it started has no frame to close: the ASGI handler calls this when it is done.
        response.llmur_close = lambda: close_relay(ctx, relayed, parts)
        return response
    try:
        if hit is not None:
            return json_response(hit, answer_headers(ctx))
        usage_from(answer.data, ctx.usage)
        note_response_id(ctx, answer.data)
        if call.translate_messages:
            answer = Answer(data=anthropic_messages.openai_to_anthropic_response(answer.data, ctx.model))
        content = answer.raw if answer.raw is not None else dumps(answer.data)
        response_cache.cache_store(ctx, content)
        if ctx.principal.log_requests or ctx.memory is not None:
            ctx.response_body = content
        return json_response(content, answer_headers(ctx))
    finally:
        await settle(ctx)


async def _route(ctx: RequestContext, attempt):
    attempt = observability.trace_attempts(attempt)  # a GenAI client span per attempt when tracing is on
    reg = ctx.registry or await registry.get()

    principal = ctx.principal

    def allowed(model: str) -> bool:
        return principal is None or principal.may_use(model)

    async def group(model: str) -> tuple[registry.Deployment, ...]:
        found = reg.group(model)   # the list the request was authorized against: one lookup per request
        if not ctx.end_user_region or not found:
            return found
        # The end user's region (LiteLLM's allowed_model_region): its deployments there, else its default
        # model's deployments there. Never outside the region: the default model may have deployments elsewhere too.
        local = end_users.in_region(found, ctx.end_user_region)
        fallback = ctx.end_user_default_model
        if not local and fallback and fallback != model and allowed(fallback):
            local = end_users.in_region(reg.group(fallback), ctx.end_user_region)
        if not local:
            raise end_users.no_region_error(model, ctx.end_user_region)
        return local

    return await router.route(ctx, lambda dep: attempt(ctx, dep), group=group, allowed=allowed)
