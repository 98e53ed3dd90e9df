"""The in-process write-behind batch for spend events, and the spool file behind it.

Used when there is no Redis stream to write to: in embedded mode (cache engine local), and with
Redis unreachable under fail_open. Events are buffered in memory and written every few hundred
milliseconds in one transaction (spend_record_batch, idempotent on request_id), off the response
path. If the database refuses the batch, it is appended to a spool file under var_dir and
replayed later, so a database outage loses nothing either. At a graceful shutdown the buffer is
flushed (lifespan shutdown hook); only a hard kill can lose the last interval's events.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import orjson
from django.conf import settings

from billing.services import spend_record_batch
from llmur.core.db import db_call
from llmur.core.processes import pid_alive

logger = logging.getLogger("llmur.billing")

FLUSH_INTERVAL = 0.25
SPOOL_RETRY_SECONDS = 5.0


def spool_dir() -> Path:
    return Path(settings.LLMUR.var_dir) / "spend-spool"


def spool_write(events: list[dict[str, Any]]) -> Path:
    """Write events to a new spool file, fsynced, then renamed into place.

    Each file is complete and immutable once visible, so a replayer can claim it by renaming it
    without racing a writer that is still appending.
    """
    directory = spool_dir()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"spool-{os.getpid()}-{time.time_ns()}.jsonl"
    partial = directory / f".{name}.partial"
    with open(partial, "wb") as handle:
        handle.write(b"".join(orjson.dumps(event) + b"\n" for event in events))
        handle.flush()
        os.fsync(handle.fileno())
    path = directory / name
    partial.rename(path)
    return path


def spool_files() -> list[Path]:
    directory = spool_dir()
    return sorted(directory.glob("spool-*.jsonl")) if directory.exists() else []


def spool_replay() -> int:
    """Record every spooled event; a file is claimed by renaming it, so two processes never share one."""
    replayed = 0
    for path in spool_files():
        claimed = path.with_name(f"replaying-{os.getpid()}-{path.name}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue
        try:
            events = [orjson.loads(line) for line in claimed.read_bytes().splitlines() if line.strip()]
            for start in range(0, len(events), 1000):
                replayed += spend_record_batch(events=events[start:start + 1000])
        except Exception:
            claimed.rename(path)  # leave it for the next attempt
            raise
        claimed.unlink()
    # Files a crashed replayer had claimed go back to the pool.
    for stale in spool_dir().glob("replaying-*.jsonl") if spool_dir().exists() else []:
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            stale.rename(stale.with_name(f"spool-{os.getpid()}-{time.time_ns()}.jsonl"))
    return replayed


class SpendWriter:
    """Buffers events and writes them in batches from a background task on the server's loop."""

    def __init__(self) -> None:
        self._buffer: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None
        self._next_spool_retry = 0.0
        self.after_flush: list[Callable[[], Any]] = []   # periodic work run by the same loop
        # One flush at a time per loop: a caller that flushes to read what was written (memory's
        # close) waits for a write the loop's own flush has in flight, instead of finding the buffer empty.
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def add(self, event: dict[str, Any]) -> None:
        self._buffer.append(event)
        self._ensure_task()

    def start(self) -> None:
        self._ensure_task()

    def pending(self) -> int:
        return len(self._buffer)

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self.flush()
                for hook in list(self.after_flush):
                    await hook()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must outlive any one failure
                logger.exception("spend writer loop")

    def _flush_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def flush(self) -> int:
        """Write what is buffered now (database, else spool), after any write in flight; replay spool files when due."""
        async with self._flush_lock():
            return await self._flush()

    async def _flush(self) -> int:
        events, self._buffer = self._buffer, []
        written = 0
        if events:
            written = await db_call(_write_or_spool, events)
        if time.monotonic() >= self._next_spool_retry and spool_files():
            try:
                written += await db_call(spool_replay)
            except Exception as exc:  # noqa: BLE001 - database still down: try again later
                logger.warning("spend spool replay failed, retrying in %.0f s: %s", SPOOL_RETRY_SECONDS,
                               exc.__class__.__name__)
                self._next_spool_retry = time.monotonic() + SPOOL_RETRY_SECONDS
        return written

    async def stop(self) -> None:
        """Cancel the loop and flush: nothing buffered is lost on a graceful shutdown."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._task = None
        await self.flush()

    def flush_sync(self) -> int:
        """For processes without an event loop at exit (commands, tests): write the buffer now."""
        events, self._buffer = self._buffer, []
        return _write_or_spool(events) if events else 0


def _write_or_spool(events: list[dict[str, Any]]) -> int:
    try:
        return spend_record_batch(events=events)
    except Exception as exc:  # noqa: BLE001 - any database failure: keep the events on disk
        path = spool_write(events)
        logger.warning("spend events spooled to %s (database write failed: %s)", path, exc.__class__.__name__)
        from django.db import close_old_connections, connection

        if not connection.in_atomic_block:
            close_old_connections()   # a broken connection is replaced before the next batch
        return 0


writer = SpendWriter()
