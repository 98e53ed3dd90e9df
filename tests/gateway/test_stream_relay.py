"""The fused OpenAI stream relay (gateway.relay._openai_passthrough) on upstream bytes cut at
awkward places: what the client receives and what billing reads must not depend on how the bytes
arrived."""
import asyncio

import orjson
import pytest

from gateway.context import RequestContext
from gateway.providers.base import UpstreamStreamError
from gateway.relay import _openai_passthrough


def _event(data) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def _chunk(text: str) -> bytes:
    return _event({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})


USAGE = _event({"id": "c", "object": "chat.completion.chunk", "choices": [],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}})
DONE = b"data: [DONE]\n\n"


def _relay(reads: list[bytes], *, keep_usage: bool = False) -> tuple[RequestContext, list[bytes], BaseException | None]:
    ctx = RequestContext(request_id="r", call_type="chat", model="m", body={}, stream=True)

    async def upstream():
        for read in reads:
            yield read

    async def collect():
        parts, error = [], None
        try:
            async for part in _openai_passthrough(ctx, upstream(), keep_usage):
                parts.append(part)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            error = exc
        return parts, error

    parts, error = asyncio.run(collect())
    return ctx, parts, error


def _split_everywhere(stream: bytes):
    for cut in range(1, len(stream)):
        yield [stream[:cut], stream[cut:]]


def test_client_bytes_and_usage_do_not_depend_on_how_the_upstream_bytes_were_cut():
    stream = _chunk("Hel") + b": keep-alive\n\n" + _chunk("lo") + USAGE + DONE
    expected = _chunk("Hel") + _chunk("lo") + DONE   # comment and usage-only chunk dropped
    for reads in [[stream], [bytes([b]) for b in stream], *_split_everywhere(stream)]:
        ctx, parts, error = _relay(reads)
        assert error is None
        assert b"".join(parts) == expected
        assert all(parts), "no empty writes to the client"
        assert (ctx.usage.prompt_tokens, ctx.usage.completion_tokens) == (7, 3)
        assert ctx.usage_seen is True
        assert ctx.content_chunks == 2
        assert "".join(ctx.streamed_text) == "Hello"


def test_usage_chunk_kept_when_the_client_asked_for_it_and_crlf_and_multiline_data_read():
    multiline = b'data: {"id":"c","object":"chat.completion.chunk",\r\ndata: "choices":[{"index":0,"delta":{"content":"x"}}]}\r\n\r\n'
    ctx, parts, error = _relay([multiline, USAGE.replace(b"\n", b"\r\n"), DONE], keep_usage=True)
    assert error is None
    assert b"".join(parts) == multiline.replace(b"\r\n", b"\n") + USAGE + DONE
    assert ctx.streamed_text == ["x"]
    assert ctx.usage.completion_tokens == 3


def test_stream_without_usage_or_done_keeps_text_for_counting_and_still_ends_with_done():
    ctx, parts, error = _relay([_chunk("a") + _chunk("b"), b'data: {"choices":[{"index":0,"delta":{"content":"c"}}]}'])
    assert error is None
    assert b"".join(parts).endswith(b'"c"}}]}\n\n' + DONE)
    assert ctx.usage_seen is False
    assert "".join(ctx.streamed_text) == "abc"
    assert ctx.content_chunks == 3


def test_error_event_after_content_in_the_same_read_sends_the_content_then_raises():
    error_event = _event({"error": {"message": "overloaded", "type": "server_error", "code": "503"}})
    ctx, parts, error = _relay([_chunk("ok") + error_event + _chunk("never")])
    assert b"".join(parts) == _chunk("ok")
    assert isinstance(error, UpstreamStreamError)
    assert (error.message, error.type, error.code) == ("overloaded", "server_error", "503")


@pytest.mark.parametrize("bad", [b"data: {not json\n\n", b"data: [1, 2]\n\n"])
def test_malformed_event_is_a_value_error_after_what_came_before(bad):
    ctx, parts, error = _relay([_chunk("ok") + bad])
    assert b"".join(parts) == _chunk("ok")
    assert isinstance(error, ValueError)
