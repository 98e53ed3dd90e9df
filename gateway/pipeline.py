"""The request pipeline: authenticate → authorize → limits → route → call → account.

Each step reads and fills gateway.context.RequestContext, so the limits/spend and router work
plug in here without touching the handlers. `gateway.limits.settle(ctx)` runs exactly once for
every request `admit` let through — on success, on an upstream error or timeout, and when the
client goes away (for streams: when the response generator is closed or cancelled).
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, AsyncIterator, Callable

import aiohttp
from django.http import HttpResponse

from gateway import aliases, auth, http, limits, registry, request_log, response_cache, router, schemas, streaming
from gateway import idempotency
from gateway.request_ids import client_request_id, id_headers, new_request_id, request_id_for
from gateway.context import RequestContext, Usage
from llmur.core.errors import LlmurError, shown
from gateway.providers import provider_for
from gateway.providers import anthropic as anthropic_translation
from gateway.providers.base import CHAT, EMBEDDING, MESSAGES, Answer, Chunk, UpstreamStreamError, dumps, loads
from billing import refusals
from llmur.core import metrics, observability

logger = logging.getLogger("llmur.gateway.pipeline")

VALIDATORS: dict[str, Callable[[dict[str, Any]], str]] = {
    "chat": schemas.validate_chat, "completion": schemas.validate_completion,
    "embedding": schemas.validate_embedding, "messages": schemas.validate_messages,
}


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


# --------------------------------------------------------------------------- steps

def authorize(ctx: RequestContext, reg: registry.Registry) -> tuple[registry.Deployment, ...]:
    """The model group, if it exists and the key may use it."""
    principal = ctx.principal
    group = reg.group(ctx.model)
    allowed = principal.allowed_models if principal is not None else None
    if allowed is not None and ctx.model not in allowed:
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
    return [name for name in names if name in principal.allowed_models]


@lru_cache(maxsize=1024)
def _decrypt(token: str) -> str:
    from accounts.keys import secret_decrypt

    return secret_decrypt(token)


def api_key_for(ctx: RequestContext, dep: registry.Deployment) -> str | None:
    """The project's own credential for this provider when it has one, else the deployment's key."""
    principal = ctx.principal
    if principal is not None and principal.project_credentials:
        token = principal.project_credentials.get(dep.provider)
        if token:
            try:
                return _decrypt(token)
            except ValueError:
                logger.error("project %s: stored %s credential cannot be decrypted", principal.project_id,
                             dep.provider)
                raise LlmurError(500, "api_error", "This project's provider credential cannot be used; an "
                                 "operator must set it again.") from None
    return dep.api_key


def _upstream_body(ctx: RequestContext) -> dict[str, Any]:
    body = ctx.body
    if any(name in body for name in schemas.PROXY_ONLY_FIELDS) or (ctx.call_type != MESSAGES and "metadata" in body):
        body = {k: v for k, v in body.items() if k not in schemas.PROXY_ONLY_FIELDS}
        if ctx.call_type != MESSAGES:
            # LiteLLM clients send metadata (tags, trace ids) for the gateway, not for the provider.
            ctx.metadata["request_metadata"] = body.pop("metadata", None)
    return body


class _Call:
    """What to send to one deployment and how to read its answer in the client's format."""

    def __init__(self, ctx: RequestContext, dep: registry.Deployment):
        self.dep, self.provider = dep, provider_for(dep.provider)
        body = _upstream_body(ctx)
        call_type = ctx.call_type
        # /v1/messages on a provider that does not speak Anthropic: translate through OpenAI chat.
        self.translate_messages = call_type == MESSAGES and self.provider.native != "anthropic"
        if self.translate_messages:
            body, call_type = anthropic_translation.anthropic_to_openai_request(body), CHAT
        if call_type not in self.provider.call_types:
            raise LlmurError(400, "invalid_request_error", f"Model '{shown(ctx.model)}' ({dep.provider}) does not support "
                             f"{ctx.call_type} requests.", param="model")
        self.call_type = call_type
        self.api_key = api_key_for(ctx, dep)
        client_headers = {}
        if ctx.call_type == MESSAGES:
            for header in ("anthropic-version", "anthropic-beta"):
                value = ctx.metadata.get(header)
                if value:
                    client_headers[header] = value
        self.request = self.provider.build_request(dep, call_type, body, api_key=self.api_key,
                                                   client_headers=client_headers)


def _timeout_error(dep: registry.Deployment, seconds: float) -> LlmurError:
    error = LlmurError(504, "timeout", f"Upstream deployment {dep.id} did not answer within {seconds:g} s.",
                       code="504")
    error.retryable = True
    return error


def _connection_error(dep: registry.Deployment, exc: BaseException) -> LlmurError:
    error = LlmurError(502, "api_error", f"Upstream deployment {dep.id} could not be reached "
                       f"({exc.__class__.__name__}).")
    error.retryable = True
    return error


async def _open(call: _Call, stream: bool) -> aiohttp.ClientResponse:
    """Send the request; return the response once its status is 2xx, else raise the mapped error."""
    dep = call.dep
    seconds = dep.stream_timeout if stream else dep.timeout
    timeout = (aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds) if stream
               else aiohttp.ClientTimeout(total=seconds))
    request = call.request
    try:
        response = await http.session().post(request.url, data=request.body, headers=request.headers,
                                             timeout=timeout)
        if response.status >= 400:
            raw = await response.read()
            response.release()
            raise call.provider.map_error(dep, response.status, raw, response.headers, call.api_key)
        return response
    except asyncio.TimeoutError:
        raise _timeout_error(dep, seconds) from None
    except aiohttp.ClientError as exc:
        raise _connection_error(dep, exc) from None


# --------------------------------------------------------------------------- usage

def _usage_from(data: dict[str, Any], usage: Usage) -> bool:
    """Fill usage from an OpenAI or Anthropic usage object; True when one was present."""
    found = data.get("usage")
    if not isinstance(found, dict):
        return False
    if "input_tokens" in found or "output_tokens" in found:
        prompt = (found.get("input_tokens") or 0) + (found.get("cache_read_input_tokens") or 0) + (
            found.get("cache_creation_input_tokens") or 0)
        if prompt:
            usage.prompt_tokens = prompt
        if found.get("output_tokens") is not None:
            usage.completion_tokens = found["output_tokens"]
        return True
    usage.prompt_tokens = found.get("prompt_tokens") or 0
    usage.completion_tokens = found.get("completion_tokens") or 0
    return True


def _note_response_id(ctx: RequestContext, data: dict[str, Any]) -> None:
    """Keep the upstream answer's id (chatcmpl-…, msg_…): spend can be looked up by it."""
    if not ctx.response_id:
        found = data.get("id")
        if isinstance(found, str):
            ctx.response_id = found[:128]


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
        ctx.metadata["body_bytes"] = len(raw)
        ctx.end_user = body.get("user") if isinstance(body.get("user"), str) else ""
        if anthropic:
            ctx.metadata["anthropic-version"] = meta.get("HTTP_ANTHROPIC_VERSION", "")
            ctx.metadata["anthropic-beta"] = meta.get("HTTP_ANTHROPIC_BETA", "")
        authorize(ctx, await registry.get())
        # Before admission: a replayed answer takes no rate-limit slot and costs nothing.
        claim = await idempotency.claim(ctx, meta.get(idempotency.HEADER), raw)
        if claim is not None and claim.replay is not None:
            return json_response(*idempotency.replay_parts(claim))
        request._llmur_idempotency = claim
        await limits.admit(ctx)
        metrics.request_started(ctx)
    except LlmurError as error:
        metrics.request_rejected(error, request_id, client_id)
        refusals.refusal_count(error=error, principal=principal, request_id=request_id)
        return error_response(error, anthropic=anthropic, headers=ids)
    # Admitted: from here on, settle exactly once however the request ends.
    hit = None
    try:
        if ctx.stream:
            call, first, parts = await _route(ctx, _open_stream)
        else:
            # After authorization, so a cached answer never crosses a key's allow-list.
            hit = await response_cache.cache_lookup(ctx, meta.get("HTTP_CACHE_CONTROL"))
            if hit is None:
                call, answer = await _route(ctx, _call_once)
    except LlmurError as error:
        ctx.success, ctx.http_status, ctx.error = False, error.status, error.message
        await _settle(ctx)
        return error_response(error, anthropic=anthropic, headers=_headers(ctx))
    except asyncio.CancelledError:
        ctx.success, ctx.http_status = False, 499   # the client went away before the answer
        ctx.metadata["client_disconnected"] = True
        await _settle(ctx)
        raise
    except Exception as exc:
        ctx.success, ctx.http_status, ctx.error = False, 500, f"Internal error in the gateway ({type(exc).__name__})."
        logger.exception("request %s failed", request_id)
        await _settle(ctx)
        return error_response(LlmurError(500, "api_error", f"Internal error in the gateway; the request id is "
                                         f"{request_id}."), anthropic=anthropic, headers=ids)
    if ctx.stream:
        relay = _relay(ctx, call, first, parts)
        response = streaming.streaming_response(relay, _headers(ctx))
        # Django closes its wrapper around the relay, not the relay itself, and a relay the client
        # left before it started has no frame to close: the ASGI handler calls this when it is done.
        response.llmur_close = lambda: _close_relay(ctx, relay, parts)
        return response
    try:
        if hit is not None:
            return json_response(hit, _headers(ctx))
        _usage_from(answer.data, ctx.usage)
        _note_response_id(ctx, answer.data)
        if call.translate_messages:
            answer = Answer(data=anthropic_translation.openai_to_anthropic_response(answer.data, ctx.model))
        content = answer.raw if answer.raw is not None else dumps(answer.data)
        response_cache.cache_store(ctx, content)
        if ctx.principal.log_requests:
            ctx.metadata["response_body"] = content
        return json_response(content, _headers(ctx))
    finally:
        await _settle(ctx)


async def _route(ctx: RequestContext, attempt):
    attempt = observability.trace_attempts(attempt)  # a GenAI client span per attempt when tracing is on
    async def group(model: str) -> tuple[registry.Deployment, ...]:
        return (await registry.get()).group(model)

    principal = ctx.principal

    def allowed(model: str) -> bool:
        return principal is None or principal.allowed_models is None or model in principal.allowed_models

    return await router.route(ctx, lambda dep: attempt(ctx, dep), group=group, allowed=allowed)


def _headers(ctx: RequestContext) -> dict[str, str]:
    headers = {**id_headers(ctx.request_id, ctx.client_request_id), **ctx.response_headers}
    if ctx.deployment_id:
        headers["x-llmur-model-deployment"] = ctx.deployment_id
    return headers


async def _settle(ctx: RequestContext) -> None:
    if ctx.metadata.get("_settled"):
        return
    ctx.metadata["_settled"] = True
    ctx.ended_monotonic = time.monotonic()
    try:
        router.release(ctx)
        # Before settling: a cancelled stream is cancelled again inside the settle's await below.
        if ctx.principal is not None and ctx.principal.log_requests:
            request_log.request_log_submit(ctx)   # queues for a background thread; never waits or raises
        # Not shielded: settle queues its booking before it first awaits, so a cancelled request
        # (client gone) still books what it used, exactly once, without a task per request.
        await limits.settle(ctx)
    except Exception:  # noqa: BLE001 - accounting failure must not turn a served answer into an error
        logger.exception("request %s: settling failed", ctx.request_id)
    finally:
        metrics.request_finished(ctx)  # after settle, which prices the request


async def _call_once(ctx: RequestContext, dep: registry.Deployment) -> tuple[_Call, Answer]:
    """One non-streaming attempt on one deployment."""
    call = _Call(ctx, dep)
    observability.upstream_call(ctx, call)
    response = await _open(call, stream=False)
    try:
        raw = await response.read()
    except asyncio.TimeoutError:
        raise _timeout_error(dep, dep.timeout) from None
    except aiohttp.ClientError as exc:
        raise _connection_error(dep, exc) from None
    finally:
        response.release()
    ctx.first_byte_monotonic = time.monotonic()
    try:
        return call, call.provider.parse_response(dep, call.call_type, raw)
    except (ValueError, KeyError, TypeError, AttributeError):
        error = LlmurError(502, "api_error", f"Upstream deployment {dep.id} sent an answer that is not valid "
                           f"{dep.provider} JSON.")
        error.retryable = True
        raise error from None


async def _open_stream(ctx: RequestContext, dep: registry.Deployment):
    """One streaming attempt: returns once the first part for the client is in hand.

    Until then nothing has reached the client, so a failure here may still be retried elsewhere;
    after it, never.
    """
    call = _Call(ctx, dep)
    observability.upstream_call(ctx, call)
    upstream = await _open(call, stream=True)
    parts = _client_parts(ctx, call, upstream)
    try:
        first = await parts.__anext__()
    except StopAsyncIteration:
        first = None
    except BaseException as exc:
        upstream.close()
        await parts.aclose()
        if isinstance(exc, asyncio.TimeoutError):
            raise _timeout_error(dep, dep.stream_timeout) from None
        if isinstance(exc, (aiohttp.ClientError, UpstreamStreamError, ValueError)):
            raise _connection_error(dep, exc) from None
        raise
    ctx.first_byte_monotonic = time.monotonic()  # time to first token (metrics, SpendLog.ttft_ms)
    return call, first, (parts, upstream)


def _client_parts(ctx: RequestContext, call: _Call, upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The upstream stream as bytes in the client's format, with usage read on the way."""
    dep = call.dep
    if call.provider.native == "anthropic" and call.call_type == MESSAGES:
        events = call.provider.parse_stream(dep, MESSAGES, streaming.sse_events(upstream.content.iter_any()))
        return _anthropic_passthrough(ctx, events)
    if call.provider.openai_sse and not call.translate_messages:
        return _openai_passthrough(ctx, upstream.content.iter_any(), _client_wants_usage(ctx))
    chunks = call.provider.parse_stream(dep, call.call_type, _upstream_events(call, upstream))
    if call.translate_messages:
        return anthropic_translation.openai_stream_to_anthropic(_count_openai(ctx, chunks, True), ctx.model)
    return _openai_out(_count_openai(ctx, chunks, _client_wants_usage(ctx)))


async def _relay(ctx: RequestContext, call: _Call, first: bytes | None, stream) -> AsyncIterator[bytes]:
    """Relay one upstream stream to the client; cancel the upstream and settle however it ends."""
    parts, upstream = stream
    dep = call.dep
    anthropic = ctx.call_type == MESSAGES
    try:
        if first is not None:
            yield first
            async for part in parts:
                yield part
    except Exception as exc:  # noqa: BLE001 - whatever broke, the client gets an error event, not a hang
        ctx.success, ctx.http_status = False, 504 if isinstance(exc, asyncio.TimeoutError) else 502
        if isinstance(exc, UpstreamStreamError):
            error = LlmurError(502, exc.type or "api_error", f"Upstream deployment {dep.id} reported an error "
                               f"mid-stream: {exc.message}", code=exc.code)
        elif isinstance(exc, asyncio.TimeoutError):
            error = LlmurError(504, "timeout", f"Upstream deployment {dep.id} sent nothing for "
                               f"{dep.stream_timeout:g} s; the stream was ended.")
        elif isinstance(exc, (aiohttp.ClientError, ValueError)):
            error = LlmurError(502, "api_error", f"Upstream deployment {dep.id} broke off the stream "
                               f"({exc.__class__.__name__}).")
        else:
            logger.exception("request %s: relaying the stream failed", ctx.request_id)
            error = LlmurError(500, "api_error", f"Internal error in the gateway; the request id is {ctx.request_id}.")
        ctx.error = error.message
        logger.warning("request %s: stream from %s ended with an error: %s", ctx.request_id, dep.id,
                       exc.__class__.__name__)
        yield (streaming.anthropic_event(error.anthropic_body()) if anthropic
               else streaming.openai_event(error.openai_body()))
    except BaseException:
        # GeneratorExit or CancelledError: the client disconnected.
        ctx.success, ctx.http_status = False, 499
        ctx.metadata["client_disconnected"] = True
        raise
    finally:
        await _finish_stream(ctx, stream)


async def _finish_stream(ctx: RequestContext, stream) -> None:
    """Drop the upstream connection, book what was streamed, settle. Runs once."""
    if ctx.metadata.get("_stream_finished"):
        return
    ctx.metadata["_stream_finished"] = True
    parts, upstream = stream
    # Closing (not releasing) drops the upstream connection at once, so the provider stops generating.
    upstream.close()
    await parts.aclose()
    if not ctx.metadata.get("_usage_seen"):
        ctx.metadata["usage_estimated"] = True
        ctx.metadata["completion_text"] = "".join(ctx.metadata.get("_text", ()))
        ctx.usage.completion_tokens = max(ctx.usage.completion_tokens, ctx.metadata.get("_content_chunks", 0))
    await _settle(ctx)


async def _close_relay(ctx: RequestContext, relay: AsyncIterator[bytes], stream) -> None:
    """End a relay however far it got: mid-stream its own cleanup runs; never started, it is done here."""
    await relay.aclose()
    if not ctx.metadata.get("_stream_finished"):
        ctx.success, ctx.http_status = False, 499
        ctx.metadata["client_disconnected"] = True
        await _finish_stream(ctx, stream)


def _upstream_events(call: _Call, upstream: aiohttp.ClientResponse):
    if call.provider.name == "ollama":
        return streaming.ndjson_lines(upstream.content.iter_any())
    return streaming.sse_events(upstream.content.iter_any())


def _client_wants_usage(ctx: RequestContext) -> bool:
    options = ctx.body.get("stream_options")
    return bool(isinstance(options, dict) and options.get("include_usage"))


async def _count_openai(ctx: RequestContext, chunks: AsyncIterator[Chunk], keep_usage: bool) -> AsyncIterator[Chunk]:
    """Read usage, count content chunks and keep their text (billing counts it when usage never comes);
    drop the usage-only chunk the client did not ask for."""
    text: list[str] = ctx.metadata.setdefault("_text", [])
    count = 0
    async for chunk in chunks:
        data = chunk.data
        if not ctx.response_id:
            _note_response_id(ctx, data)
        if data.get("usage"):
            ctx.metadata["_usage_seen"] = _usage_from(data, ctx.usage)
            if not data.get("choices") and not keep_usage:
                continue
        choices = data.get("choices")
        if choices:
            count += 1
            ctx.metadata["_content_chunks"] = count
            choice = choices[0]
            piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
            if isinstance(piece, str):
                text.append(piece)
        yield chunk


async def _openai_passthrough(ctx: RequestContext, reads: AsyncIterator[bytes], keep_usage: bool) -> AsyncIterator[bytes]:
    """OpenAI SSE from upstream to the client in one generator: what sse_events → openai_chunks →
    _count_openai → _openai_out do, but one yield per upstream read instead of one per event, each
    through four generator layers (and one ASGI send per event). Nothing is held back: the events
    that arrived together leave together; an unfinished one waits for its rest, as before."""
    text: list[str] = ctx.metadata.setdefault("_text", [])
    buffer = b""
    done = False
    out: list[bytes] = []
    try:
        async for read in reads:
            if b"\r" in read:
                read = read.replace(b"\r\n", b"\n")
            buffer = buffer + read if buffer else read
            start = 0
            while True:
                end = buffer.find(b"\n\n", start)
                if end < 0:
                    break
                raw = buffer[start:end + 2]
                start = end + 2
                if _openai_event(ctx, raw, out, text, keep_usage):
                    done = True
                    break
            if done:
                break
            buffer = buffer[start:] if start else buffer
            if out:
                yield b"".join(out)
                out.clear()
        else:
            if buffer.strip():
                _openai_event(ctx, buffer + b"\n\n", out, text, keep_usage)
    except Exception:
        if out:   # the events before the failure still reach the client, then the error event
            yield b"".join(out)
        raise
    out.append(streaming.DONE)
    yield b"".join(out)


def _openai_event(ctx: RequestContext, raw: bytes, out: list[bytes], text: list[str], keep_usage: bool) -> bool:
    """Read one OpenAI SSE event as openai_chunks and _count_openai do; append what the client gets
    to out. True at [DONE]."""
    if raw.startswith(b"data: ") and raw.find(b"\n", 6) == len(raw) - 2:
        data = raw[6:-2].strip()   # the usual event: one data line
    else:
        parsed_event = streaming.parse_event(raw)
        if parsed_event is None:
            return False
        data = parsed_event[1]
    if data == b"[DONE]":
        return True
    if not data:
        return False
    parsed = loads(data)
    if not isinstance(parsed, dict):
        raise ValueError("an OpenAI stream event that is not a JSON object")
    if parsed.get("error") and "choices" not in parsed:
        error = parsed["error"] if isinstance(parsed["error"], dict) else {"message": str(parsed["error"])}
        raise UpstreamStreamError(str(error.get("message") or "upstream stream error"),
                                  error.get("type") or "api_error", error.get("code"))
    if not ctx.response_id:
        _note_response_id(ctx, parsed)
    if parsed.get("usage"):
        ctx.metadata["_usage_seen"] = _usage_from(parsed, ctx.usage)
        if not parsed.get("choices") and not keep_usage:
            return False
    choices = parsed.get("choices")
    if choices:
        ctx.metadata["_content_chunks"] = ctx.metadata.get("_content_chunks", 0) + 1
        choice = choices[0]
        piece = (choice.get("delta") or {}).get("content") if "delta" in choice else choice.get("text")
        if isinstance(piece, str):
            text.append(piece)
    out.append(raw)
    return False


async def _openai_out(chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk.raw if chunk.raw is not None else streaming.openai_event(chunk.data)
    yield streaming.DONE


async def _anthropic_passthrough(ctx: RequestContext, events: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    text: list[str] = ctx.metadata.setdefault("_text", [])
    count = 0
    async for event in events:
        data = event.data
        kind = data.get("type")
        if kind == "message_start":
            _usage_from(data.get("message") or {}, ctx.usage)
            _note_response_id(ctx, data.get("message") or {})
        elif kind == "message_delta":
            ctx.metadata["_usage_seen"] = _usage_from(data, ctx.usage)
        elif kind == "content_block_delta":
            count += 1
            ctx.metadata["_content_chunks"] = count
            piece = (data.get("delta") or {}).get("text")
            if isinstance(piece, str):
                text.append(piece)
        yield event.raw if event.raw is not None else streaming.anthropic_event(data)


# --------------------------------------------------------------------------- models

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
            names += aliases.visible_aliases(principal, names)
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
