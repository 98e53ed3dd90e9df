"""The fake provider's HTTP/1.1 server: one asyncio protocol per connection, no framework.

Routes (any prefix before them works, so Azure's /openai/deployments/<name>/chat/completions
and a base URL with or without /v1 both reach them):

  …/chat/completions, …/completions   OpenAI JSON, or SSE with "stream": true
  …/embeddings                        OpenAI embeddings
  …/models                            the model list
  …/messages                          Anthropic Messages, JSON or SSE events
  /api/chat, /api/generate, /api/embed   Ollama's native API (NDJSON streams)
  GET /health                         {"status": "ok"}
  GET /stats, POST /stats/reset       the counters tests read (fakeprovider.stats)

Immediate answers are written from data_received without a task, which is what keeps one
process well above 10,000 small requests per second; answers that wait (slow, drip, hang) run
in a task while the connection's later requests queue behind them, as HTTP/1.1 requires.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import orjson

from fakeprovider import answers
from fakeprovider.behaviour import Behaviour, behaviour_for
from fakeprovider.stats import Stats

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed", 429: b"Too Many Requests",
            500: b"Internal Server Error"}
_MAX_HEAD = 64 * 1024


class Options:
    """Server-wide settings from the command line."""

    def __init__(self, *, tokens: int = 16, latency_ms: float = 0, chunk_delay_ms: float = 0,
                 models: list[str] | None = None) -> None:
        self.tokens, self.latency_s, self.chunk_delay_s = tokens, latency_ms / 1000, chunk_delay_ms / 1000
        self.models = models or ["fake-gpt"]


def response(status: int, body: dict, extra_headers: tuple[bytes, ...] = ()) -> bytes:
    payload = orjson.dumps(body)
    head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n" % (
        status, _REASONS.get(status, b"OK"), len(payload))
    return head + b"".join(h + b"\r\n" for h in extra_headers) + b"\r\n" + payload


def _stream_head(content_type: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type +
            b"\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")


_ERROR_ANSWERS = {
    500: lambda: response(500, answers.error("fake provider failure", "server_error")),
    429: lambda: response(429, answers.error("fake rate limit", "rate_limit_error", "rate_limit_exceeded"),
                          (b"retry-after: 1",)),
    400: lambda: response(400, answers.error("This model's maximum context length is 8 tokens",
                                             "invalid_request_error", "context_length_exceeded")),
}


class Request:
    """One parsed request; body is {} when there was none and None when it was not a JSON object."""

    __slots__ = ("method", "path", "headers", "body")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


class Stream:
    """A streamed answer: its head, one event per word, the closing events."""

    __slots__ = ("head", "content", "closing")

    def __init__(self, content_type: bytes, events: tuple[list[bytes], list[bytes]]) -> None:
        self.head = _stream_head(content_type)
        self.content, self.closing = events


class FakeProvider:
    """Routing and answers; one instance per server, shared by its connections."""

    def __init__(self, options: Options, stats: Stats) -> None:
        self.options, self.stats = options, stats

    def answer(self, path: str, body: dict[str, Any]) -> bytes | Stream | None:
        """The answer to one request: bytes, a Stream, or None for a route that does not exist."""
        model = str(body.get("model", "fake"))
        behaviour = behaviour_for(model)
        if behaviour.status != 200:
            return _ERROR_ANSWERS[behaviour.status]()
        if path.startswith("/api/"):
            return self._ollama(path, body, model, behaviour)
        stream = bool(body.get("stream"))
        if path.endswith("/chat/completions") or path.endswith("/completions"):
            chat = path.endswith("/chat/completions")
            words = answers.answer_words(body, self.options.tokens, behaviour.echo, behaviour.summary)
            completion = answers.completion_tokens(words, behaviour.echo, behaviour.summary)
            if stream:
                return Stream(b"text/event-stream", answers.openai_stream(body, model, words, completion, chat))
            return response(200, answers.openai_completion(body, model, words, completion, chat))
        if path.endswith("/embeddings"):
            return response(200, answers.openai_embeddings(body, model))
        if path.endswith("/messages"):
            words = answers.answer_words(body, self.options.tokens, behaviour.echo, behaviour.summary)
            completion = answers.completion_tokens(words, behaviour.echo, behaviour.summary)
            if stream:
                return Stream(b"text/event-stream", answers.anthropic_stream(body, model, words, completion))
            return response(200, answers.anthropic_message(body, model, words, completion))
        return None

    def _ollama(self, path: str, body: dict, model: str, behaviour: Behaviour) -> bytes | Stream | None:
        if path == "/api/embed":
            return response(200, answers.ollama_embed(body, model))
        if path not in ("/api/chat", "/api/generate"):
            return None
        chat = path == "/api/chat"
        words = answers.answer_words(body, self.options.tokens, behaviour.echo, behaviour.summary)
        completion = answers.completion_tokens(words, behaviour.echo, behaviour.summary)
        # Ollama streams unless the request says "stream": false.
        if body.get("stream", True) is not False:
            return Stream(b"application/x-ndjson", answers.ollama_stream(body, model, words, completion, chat))
        return response(200, answers.ollama_chat(body, model, words, completion, chat))


class Connection(asyncio.Protocol):
    """One client connection: parses requests in order and writes their answers."""

    def __init__(self, provider: FakeProvider) -> None:
        self.provider, self.stats = provider, provider.stats
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.stats.open_connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.open_connections -= 1
        if self.busy is not None:
            self.busy.cancel()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.busy is None:
            self._process()

    def _process(self) -> None:
        while self.transport is not None and not self.transport.is_closing():
            request = self._parse()
            if request is None:
                return
            keep_open = request.headers.get("connection", "").lower() != "close"
            waits = self._answer(request)
            if waits is not None:
                self.busy = asyncio.get_running_loop().create_task(waits)
                self.busy.add_done_callback(lambda _task, keep=keep_open: self._resume(keep))
                return
            if not keep_open:
                self.transport.close()
                return

    def _resume(self, keep_open: bool) -> None:
        self.busy = None
        if self.transport is None or self.transport.is_closing():
            return
        if not keep_open:
            self.transport.close()
            return
        self._process()

    def _parse(self) -> Request | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > _MAX_HEAD:
                self._fail(400, "request head too large")
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            self._fail(400, "malformed request line")
            return None
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parsed = _dechunk(self.buffer, start)
            if parsed is None:
                return None
            raw, consumed = parsed
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                self._fail(400, "bad content-length")
                return None
            if len(self.buffer) < start + length:
                return None
            raw, consumed = bytes(self.buffer[start:start + length]), start + length
        del self.buffer[:consumed]
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = None
        return Request(method, target.split("?", 1)[0], headers, body if isinstance(body, dict) else None)

    def _fail(self, status: int, message: str) -> None:
        assert self.transport is not None
        self.transport.write(response(status, answers.error(message, "invalid_request_error")))
        self.transport.close()

    def _answer(self, request: Request):
        """Write an immediate answer now; return a coroutine for one that has to wait."""
        assert self.transport is not None
        method, path, body = request.method, request.path, request.body
        if path in ("/stats", "/stats/reset"):
            if method == "POST" and path == "/stats/reset":
                self.stats.reset()
                self.transport.write(response(200, {"ok": True}))
            else:
                self.transport.write(response(200, self.stats.as_dict()))
            return None
        self.stats.count(request)
        if method == "GET":
            if path in ("/health", "/"):
                self.transport.write(response(200, {"status": "ok"}))
            elif path.endswith("/models") or path == "/api/tags":
                self.transport.write(response(200, answers.openai_models(self.provider.options.models)))
            else:
                self.transport.write(response(404, answers.error(f"no route GET {path}", "invalid_request_error")))
            return None
        if body is None:
            self.transport.write(response(400, answers.error("the body is not a JSON object", "invalid_request_error")))
            return None
        model = str(body.get("model", ""))
        behaviour = behaviour_for(model)
        answer = self.provider.answer(path, body)
        if answer is None:
            self.transport.write(response(404, answers.error(f"no route {method} {path}", "invalid_request_error")))
            return None
        delay = self.provider.options.latency_s + behaviour.first_byte_delay_s
        chunk_delay = (behaviour.chunk_delay_s if behaviour.chunk_delay_s is not None
                       else self.provider.options.chunk_delay_s)
        if behaviour.hang:
            return asyncio.sleep(86400)
        if isinstance(answer, bytes):
            if behaviour.cut:
                self.transport.write(answer[:answer.index(b"\r\n\r\n") + 4])
                self.transport.abort()
                return None
            if delay:
                return self._later(delay, answer)
            self.transport.write(answer)
            return None
        if delay or chunk_delay:
            return self._stream_slowly(answer, delay, chunk_delay, behaviour.cut, model)
        self._stream_now(answer, behaviour.cut, model)
        return None

    async def _later(self, delay: float, answer: bytes) -> None:
        await asyncio.sleep(delay)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)

    def _stream_now(self, stream: Stream, cut: bool, model: str) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(stream.head)
        for index, event in enumerate(stream.content):
            if cut and index == 3:
                transport.abort()
                self.stats.stream_ended(model, "cut")
                return
            transport.write(b"%x\r\n%s\r\n" % (len(event), event))
        transport.write(b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in stream.closing) + b"0\r\n\r\n")
        self.stats.stream_ended(model, "completed")

    async def _stream_slowly(self, stream: Stream, delay: float, chunk_delay: float, cut: bool, model: str) -> None:
        transport = self.transport
        assert transport is not None
        try:
            if delay:
                await asyncio.sleep(delay)
            _write(transport, stream.head)
            for index, event in enumerate(stream.content):
                if cut and index == 3:
                    transport.abort()
                    self.stats.stream_ended(model, "cut")
                    return
                _write(transport, b"%x\r\n%s\r\n" % (len(event), event))
                if chunk_delay:
                    await asyncio.sleep(chunk_delay)
            _write(transport, b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in stream.closing) + b"0\r\n\r\n")
        except (ConnectionError, asyncio.CancelledError):
            self.stats.stream_ended(model, "aborted")
            return
        self.stats.stream_ended(model, "completed")


def _write(transport: asyncio.Transport, data: bytes) -> None:
    if transport.is_closing():
        raise ConnectionResetError("the client went away")
    transport.write(data)


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body starting at start: (body, bytes consumed), or None until it is complete."""
    parts, position = [], start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0] or b"0", 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", position)
            if trailer_end < 0:
                return None
            return b"".join(parts), trailer_end + 2
        if len(buffer) < position + size + 2:
            return None
        parts.append(bytes(buffer[position:position + size]))
        position += size + 2


async def serve(host: str, port: int, options: Options, stats: Stats | None = None,
                ready: Callable[[int], None] | None = None) -> None:
    """Serve until cancelled; ready(port) is called once listening (port 0 picks a free one)."""
    provider = FakeProvider(options, stats or Stats())
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(provider), host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(bound)
    async with server:
        await server.serve_forever()
