"""The stream relay: an upstream stream, chunk by chunk, to the client in the format it asked for,
with usage and the answer's id read on the way, the upstream closed and the request settled
however the stream ends (finished, broken upstream, or the client gone)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aiohttp

from gateway import registry, streaming
from gateway.context import RequestContext
from gateway.providers import anthropic_messages
from gateway.providers.base import MESSAGES, Chunk, UpstreamStreamError, loads
from gateway.settlement import settle
from gateway.upstream import Call, connection_error, open_response, timeout_error
from gateway.usage import tally_anthropic_event, tally_openai_chunk
from llmur.core import observability
from llmur.core.errors import LlmurError

logger = logging.getLogger("llmur.gateway.pipeline")

async def open_stream(ctx: RequestContext, dep: registry.Deployment):
    """One streaming attempt: returns once the first part for the client is in hand.

    Until then nothing has reached the client, so a failure here may still be retried elsewhere;
    after it, never.
    """
    call = Call(ctx, dep)
    observability.upstream_call(ctx, call)
    upstream = await open_response(call, stream=True)
    parts = _client_parts(ctx, call, upstream)
    try:
        first = await parts.__anext__()
    except StopAsyncIteration:
        first = None
    except BaseException as exc:
        upstream.close()
        await parts.aclose()
        if isinstance(exc, asyncio.TimeoutError):
            raise timeout_error(dep, dep.stream_timeout) from None
        if isinstance(exc, (aiohttp.ClientError, UpstreamStreamError, ValueError)):
            raise connection_error(dep, exc) from None
        raise
    ctx.first_byte_monotonic = time.monotonic()  # time to first token (metrics, SpendLog.ttft_ms)
    return call, first, (parts, upstream)


def _client_parts(ctx: RequestContext, call: Call, upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The upstream stream as bytes in the client's format, with usage read on the way."""
    dep = call.dep
    if call.provider.native == "anthropic" and call.call_type == MESSAGES:
        events = call.provider.parse_stream(dep, MESSAGES, streaming.sse_events(upstream.content.iter_any()))
        return _anthropic_passthrough(ctx, events)
    if call.provider.openai_sse and not call.translate_messages:
        return _openai_passthrough(ctx, upstream.content.iter_any(), _client_wants_usage(ctx))
    chunks = call.provider.parse_stream(dep, call.call_type, _upstream_events(call, upstream))
    if call.translate_messages:
        return anthropic_messages.openai_stream_to_anthropic(_count_openai(ctx, chunks, True), ctx.model)
    return _openai_out(_count_openai(ctx, chunks, _client_wants_usage(ctx)))


async def relay(ctx: RequestContext, call: Call, first: bytes | None, stream) -> AsyncIterator[bytes]:
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
        ctx.client_disconnected = True
        raise
    finally:
        await _finish_stream(ctx, stream)


async def _finish_stream(ctx: RequestContext, stream) -> None:
    """Drop the upstream connection, book what was streamed, settle. Runs once."""
    if ctx.stream_finished:
        return
    ctx.stream_finished = True
    parts, upstream = stream
    # Closing (not releasing) drops the upstream connection at once, so the provider stops generating.
    upstream.close()
    await parts.aclose()
    if not ctx.usage_seen:
        ctx.usage_estimated = True
        ctx.completion_text = "".join(ctx.streamed_text)
        ctx.usage.completion_tokens = max(ctx.usage.completion_tokens, ctx.content_chunks)
    await settle(ctx)


async def close_relay(ctx: RequestContext, relay: AsyncIterator[bytes], stream) -> None:
    """End a relay however far it got: mid-stream its own cleanup runs; never started, it is done here."""
    await relay.aclose()
    if not ctx.stream_finished:
        ctx.success, ctx.http_status = False, 499
        ctx.client_disconnected = True
        await _finish_stream(ctx, stream)


def _upstream_events(call: Call, upstream: aiohttp.ClientResponse):
    if call.provider.stream_framing == "ndjson":
        return streaming.ndjson_lines(upstream.content.iter_any())
    return streaming.sse_events(upstream.content.iter_any())


def _client_wants_usage(ctx: RequestContext) -> bool:
    options = ctx.body.get("stream_options")
    return bool(isinstance(options, dict) and options.get("include_usage"))


async def _count_openai(ctx: RequestContext, chunks: AsyncIterator[Chunk], keep_usage: bool) -> AsyncIterator[Chunk]:
    """Tally each chunk (gateway.usage); drop the usage-only chunk the client did not ask for."""
    async for chunk in chunks:
        if tally_openai_chunk(ctx, chunk.data, keep_usage):
            yield chunk


async def _openai_passthrough(ctx: RequestContext, reads: AsyncIterator[bytes], keep_usage: bool) -> AsyncIterator[bytes]:
    """OpenAI SSE from upstream to the client in one generator: what sse_events → openai_chunks →
    _count_openai → _openai_out do, but one yield per upstream read instead of one per event, each
    through four generator layers (and one ASGI send per event). Nothing is held back: the events
    that arrived together leave together; an unfinished one waits for its rest, as before."""
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
                if _openai_event(ctx, raw, out, keep_usage):
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
                _openai_event(ctx, buffer + b"\n\n", out, keep_usage)
    except Exception:
        if out:   # the events before the failure still reach the client, then the error event
            yield b"".join(out)
        raise
    out.append(streaming.DONE)
    yield b"".join(out)


def _openai_event(ctx: RequestContext, raw: bytes, out: list[bytes], keep_usage: bool) -> bool:
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
    if tally_openai_chunk(ctx, parsed, keep_usage):
        out.append(raw)
    return False


async def _openai_out(chunks: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk.raw if chunk.raw is not None else streaming.openai_event(chunk.data)
    yield streaming.DONE


async def _anthropic_passthrough(ctx: RequestContext, events: AsyncIterator[Chunk]) -> AsyncIterator[bytes]:
    async for event in events:
        tally_anthropic_event(ctx, event.data)
        yield event.raw if event.raw is not None else streaming.anthropic_event(event.data)
