"""Settlements of concurrent requests sent to Redis together, by one flusher task per event loop."""
from __future__ import annotations

import asyncio
from typing import Any

import redis

from billing.connections import async_redis
from gateway.admission import breaker, scripts
from gateway.admission.breaker import redis_errors
from llmur.core.flusher import WriteBehind


class SettlementBatcher:
    """The settle scripts of concurrent requests, sent together by one flusher task per event loop.

    A request queues its settlement synchronously and then waits for the batch it went out with,
    so its answer still leaves only once its spend is booked; a request cancelled while waiting
    (the client left) stops waiting, but its settlement is already queued and goes out exactly once
    with the batch (no task per request, as asyncio.shield needed). Under load, one write and one
    read carry many settlements. Should the batch fail, each settlement falls back as before
    (per-process counters, spend event to the batch writer).
    """

    def __init__(self) -> None:
        self.queue: WriteBehind[tuple[list[Any], Any, asyncio.Future]] = WriteBehind(self._send)

    def submit(self, args: list[Any], fallback) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.queue.add((args, fallback, future))
        return future

    async def _send(self, batch: list[tuple[list[Any], Any, asyncio.Future]]) -> None:
        try:
            script = scripts.runner.script("settle")
            connections = scripts.runner.connections_for(async_redis())
            results = await connections.evalsha_many(script.sha, script.script, [args for args, _, _ in batch])
        except redis_errors() as exc:
            for _args, fallback, future in batch:
                fallback(exc)
                if not future.done():
                    future.set_result(None)
            return
        except BaseException as exc:
            for _args, _fallback, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            return
        breaker.state.succeeded()
        for (_args, _fallback, future), result in zip(batch, results):
            if future.done():
                continue
            if isinstance(result, redis.ResponseError):
                future.set_exception(result)
            else:
                future.set_result(None)


settlements = SettlementBatcher()
