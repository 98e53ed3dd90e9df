"""Write-behind: items queued without waiting, sent in order and in batches by one flusher task per
event loop, so a burst of callers costs one round trip, not one each.

Used by admission's settlements (gateway/admission/batcher.py) and routing's counter updates
(gateway/routing/redis_state.py); each supplies how a batch is sent and what a failure means.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class WriteBehind(Generic[T]):
    """A queue of items and the task that sends them with send(batch).

    send returns False to stop flushing after a failure (what is queued meanwhile waits for the
    next add); anything else sends the next batch, if one queued up during the last.
    """

    def __init__(self, send: Callable[[list[T]], Awaitable[bool | None]]) -> None:
        self.pending: list[T] = []
        self.task: asyncio.Task | None = None
        self._send = send

    def add(self, item: T) -> None:
        """Queue item; start a flusher on the running loop unless one runs there already."""
        self.pending.append(item)
        loop = asyncio.get_running_loop()
        task = self.task
        # A flusher of another (finished) event loop never runs again: start one on this loop.
        if task is None or task.done() or task.get_loop() is not loop:
            self.task = loop.create_task(self._flush())

    def take(self) -> list[T]:
        """Everything queued, removed from the queue (to send it some other way)."""
        batch, self.pending = self.pending, []
        return batch

    def requeue(self, batch: list[T]) -> None:
        """Put a batch that was not sent back at the front, ahead of what queued since."""
        self.pending[:0] = batch

    async def _flush(self) -> None:
        while self.pending:
            if await self._send(self.take()) is False:
                return
