"""A TCP fault proxy for tests: sits between llmur and PostgreSQL or Redis and breaks the link on demand.

It runs an asyncio loop in a background thread of the test process, so a test controls it with
plain method calls: ``cut()`` drops every open connection, ``refuse(True)`` closes new ones at
once, ``stall(True)`` keeps connections open but forwards nothing (a hung peer), and
``latency(seconds)`` delays every chunk. ``heal()`` undoes all of it.
"""
from __future__ import annotations

import asyncio
import threading

from tests.conftest import free_port


class FaultProxy:
    """Forward 127.0.0.1:<port> to target_host:target_port, with faults switchable from the test."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target_host, self.target_port = target_host, target_port
        self.port = free_port()
        self._refusing = False
        self._stalled = asyncio.Event()     # set = traffic flows; cleared = stalled
        self._delay = 0.0
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")

    # ------------------------------------------------------------------ control (from any thread)

    def _call(self, func, *args):
        async def run():
            return func(*args)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def cut(self) -> None:
        """Drop every open connection now (both directions, like a reset)."""
        def do():
            for writer in list(self._writers):
                transport = writer.transport
                if transport is not None:
                    transport.abort()
            self._writers.clear()
        self._call(do)

    def refuse(self, on: bool = True) -> None:
        """Close new connections as soon as they are accepted (and, when turning on, cut the open ones)."""
        self._call(lambda: setattr(self, "_refusing", on))
        if on:
            self.cut()

    def stall(self, on: bool = True) -> None:
        """Stop forwarding bytes without closing anything (a peer that hangs)."""
        self._call(self._stalled.clear if on else self._stalled.set)

    def latency(self, seconds: float) -> None:
        self._call(lambda: setattr(self, "_delay", seconds))

    def heal(self) -> None:
        self._call(lambda: (setattr(self, "_refusing", False), setattr(self, "_delay", 0.0), self._stalled.set()))

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    @property
    def open_connections(self) -> int:
        return self._call(lambda: len(self._writers)) // 2

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stalled.set()
        server = self._loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for writer in list(self._writers):
                if writer.transport is not None:
                    writer.transport.abort()
            self._loop.close()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        pair = {client_writer, upstream_writer}
        self._writers |= pair
        try:
            await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))
        finally:
            for writer in pair:
                self._writers.discard(writer)
                if writer.transport is not None:
                    writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await self._stalled.wait()
                if self._delay:
                    await asyncio.sleep(self._delay)
                if writer.transport is None or writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if writer.transport is not None:
                writer.transport.abort()
