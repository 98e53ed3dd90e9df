"""The upstream call: what to send to one deployment (body, credentials, headers) and one attempt on
it, its HTTP errors and timeouts mapped to the error the client sees."""
from __future__ import annotations

import asyncio
import logging
import time
from functools import lru_cache
from typing import Any

import aiohttp

from accounts.keys import secret_decrypt
from gateway import http, registry, schemas
from gateway.context import RequestContext
from gateway.providers import anthropic_messages, provider_for
from gateway.providers.base import CHAT, MESSAGES, Answer
from llmur.core import observability
from llmur.core.errors import LlmurError, shown

logger = logging.getLogger("llmur.gateway.pipeline")


@lru_cache(maxsize=1024)
def _decrypt(token: str) -> str:
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


def upstream_body(ctx: RequestContext) -> dict[str, Any]:
    body = ctx.body
    if any(name in body for name in schemas.PROXY_ONLY_FIELDS) or (ctx.call_type != MESSAGES and "metadata" in body):
        body = {k: v for k, v in body.items() if k not in schemas.PROXY_ONLY_FIELDS}
        if ctx.call_type != MESSAGES:
            # LiteLLM clients send metadata (tags, trace ids) for the gateway, not for the provider.
            ctx.metadata = body.pop("metadata", None)
    return body


class Call:
    """What to send to one deployment and how to read its answer in the client's format."""

    def __init__(self, ctx: RequestContext, dep: registry.Deployment):
        self.dep, self.provider = dep, provider_for(dep.provider)
        body = upstream_body(ctx)
        call_type = ctx.call_type
        # /v1/messages on a provider that does not speak Anthropic: translate through OpenAI chat.
        self.translate_messages = call_type == MESSAGES and self.provider.native != "anthropic"
        if self.translate_messages:
            body, call_type = anthropic_messages.anthropic_to_openai_request(body), CHAT
        if call_type not in self.provider.call_types:
            raise LlmurError(400, "invalid_request_error", f"Model '{shown(ctx.model)}' ({dep.provider}) does not support "
                             f"{ctx.call_type} requests.", param="model")
        self.call_type = call_type
        self.api_key = api_key_for(ctx, dep)
        client_headers = {}
        if ctx.call_type == MESSAGES:
            for header in ("anthropic-version", "anthropic-beta"):
                value = ctx.client_headers.get(header)
                if value:
                    client_headers[header] = value
        self.request = self.provider.build_request(dep, call_type, body, api_key=self.api_key,
                                                   client_headers=client_headers)


def timeout_error(dep: registry.Deployment, seconds: float) -> LlmurError:
    error = LlmurError(504, "timeout", f"Upstream deployment {dep.id} did not answer within {seconds:g} s.",
                       code="504")
    error.retryable = True
    return error


def connection_error(dep: registry.Deployment, exc: BaseException) -> LlmurError:
    error = LlmurError(502, "api_error", f"Upstream deployment {dep.id} could not be reached "
                       f"({exc.__class__.__name__}).")
    error.retryable = True
    return error


async def open_response(call: Call, stream: bool) -> aiohttp.ClientResponse:
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
        raise timeout_error(dep, seconds) from None
    except aiohttp.ClientError as exc:
        raise connection_error(dep, exc) from None


async def call_once(ctx: RequestContext, dep: registry.Deployment) -> tuple[Call, Answer]:
    """One non-streaming attempt on one deployment."""
    call = Call(ctx, dep)
    observability.upstream_call(ctx, call)
    response = await open_response(call, stream=False)
    try:
        raw = await response.read()
    except asyncio.TimeoutError:
        raise timeout_error(dep, dep.timeout) from None
    except aiohttp.ClientError as exc:
        raise connection_error(dep, exc) from None
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
