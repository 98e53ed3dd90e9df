"""Server-sent events in and out: split upstream bytes into events, frame events for the client.

Events are forwarded as they arrive, never buffered whole; the response carries the headers that
stop proxies in front from buffering (Cache-Control: no-cache, X-Accel-Buffering: no).
"""
from __future__ import annotations

from typing import Any, AsyncIterator

import orjson
from django.http import StreamingHttpResponse

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"


async def sse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[str | None, bytes, bytes]]:
    """Upstream SSE bytes → (event name, data, raw event including its blank line), one per event."""
    buffer = b""
    async for chunk in chunks:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        buffer += chunk
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            raw, buffer = buffer[:end + 2], buffer[end + 2:]
            parsed = parse_event(raw)
            if parsed is not None:
                yield parsed
    if buffer.strip():
        parsed = parse_event(buffer + b"\n\n")
        if parsed is not None:
            yield parsed


def parse_event(raw: bytes) -> tuple[str | None, bytes, bytes] | None:
    name = None
    data: list[bytes] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if not data and name is None:
        return None  # comments (": keep-alive") and blank keep-alive lines
    return name, b"\n".join(data).strip(), raw


async def ndjson_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Upstream newline-delimited JSON bytes → one line at a time (Ollama streams)."""
    buffer = b""
    async for chunk in chunks:
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line, buffer = buffer[:end].strip(), buffer[end + 1:]
            if line:
                yield line
    if buffer.strip():
        yield buffer.strip()


def openai_event(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def anthropic_event(data: dict[str, Any]) -> bytes:
    return b"event: " + data["type"].encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def streaming_response(content: AsyncIterator[bytes], headers: dict[str, str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    for name, value in SSE_HEADERS.items():
        response[name] = value
    for name, value in headers.items():
        response[name] = value
    return response
