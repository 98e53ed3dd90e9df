"""Draining the Redis spend stream into SpendLog: consumer group, ack after commit, claim the dead's.

Each settled request is one stream entry (XADD in the settlement script). A drain reads with
XREADGROUP, inserts and books the batch in one transaction (billing.services.spend_record_batch,
idempotent on request_id), and only then XACKs and XDELs the entries. Entries delivered to a
worker that died stay pending; after LLMUR_SPEND_CLAIM_IDLE_MS another drain takes them over
with XAUTOCLAIM and records them, so nothing is lost and, thanks to the idempotent insert,
nothing is counted twice. While the database is down the batch fails, nothing is acked, and the
entries wait in Redis.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import redis

from billing import events as spend_events
from billing.connections import DEAD_LETTERS, GROUP, STREAM, sync_redis
from billing.services import spend_record_batch

logger = logging.getLogger("llmur.billing")

def default_batch() -> int:
    return int(os.environ.get("LLMUR_SPEND_DRAIN_BATCH", "500"))


def claim_idle_ms() -> int:
    return int(os.environ.get("LLMUR_SPEND_CLAIM_IDLE_MS", "60000"))


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def ensure_group(client: redis.Redis) -> None:
    try:
        client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _record(client: redis.Redis, entries: list[tuple[Any, dict]]) -> int:
    """Record one batch of entries, then ack and delete them; returns how many were new."""
    if not entries:
        return 0
    parsed, bad = [], []
    for entry_id, fields in entries:
        raw = (fields or {}).get(b"e") if fields else None
        try:
            parsed.append(spend_events.decode(raw))
        except (ValueError, TypeError):
            bad.append((entry_id, raw))
    new = spend_record_batch(events=parsed)
    ids = [entry_id for entry_id, _ in entries]
    pipe = client.pipeline(transaction=True)
    for entry_id, raw in bad:
        pipe.xadd(DEAD_LETTERS, {"e": raw or b"", "id": entry_id})
    pipe.xack(STREAM, GROUP, *ids)
    pipe.xdel(STREAM, *ids)
    pipe.execute()
    if bad:
        logger.error("spend queue: %d unreadable entries moved to %s", len(bad), DEAD_LETTERS)
    return new


def drain(*, client: redis.Redis | None = None, batch: int | None = None, max_seconds: float = 20.0,
          consumer: str | None = None) -> int:
    """Drain the stream until it is empty or max_seconds have passed; returns new SpendLog rows."""
    batch = batch or default_batch()
    client = client or sync_redis()
    consumer = consumer or consumer_name()
    ensure_group(client)
    deadline = time.monotonic() + max_seconds
    new = 0
    # 1. Entries a dead (or stuck) consumer left pending for too long.
    start = "0-0"
    while time.monotonic() < deadline:
        reply = client.xautoclaim(STREAM, GROUP, consumer, min_idle_time=claim_idle_ms(), start_id=start,
                                  count=batch)
        start, claimed = reply[0], reply[1]
        claimed = [(entry_id, fields) for entry_id, fields in claimed if fields is not None]
        if claimed:
            new += _record(client, claimed)
        if start in (b"0-0", "0-0"):
            break
    # 2. Entries delivered to this consumer name before and never acked, then 3. new entries.
    for cursor in ("0", ">"):
        while time.monotonic() < deadline:
            reply = client.xreadgroup(GROUP, consumer, {STREAM: cursor}, count=batch)
            entries = reply[0][1] if reply else []
            gone = [entry_id for entry_id, fields in entries if not fields]
            if gone:  # pending ids whose entries were deleted: nothing to record, just release them
                client.xack(STREAM, GROUP, *gone)
            entries = [(entry_id, fields) for entry_id, fields in entries if fields]
            if not entries:
                if gone and cursor == "0":
                    continue
                break
            new += _record(client, entries)
    _forget_idle_consumers(client)
    return new


def _forget_idle_consumers(client: redis.Redis) -> None:
    """Drop consumers (workers long gone) that hold nothing, so XINFO stays readable."""
    try:
        for info in client.xinfo_consumers(STREAM, GROUP):
            if info.get("pending", 0) == 0 and info.get("idle", 0) > 3_600_000:
                client.xgroup_delconsumer(STREAM, GROUP, info["name"])
    except redis.RedisError:
        pass


def backlog(client: redis.Redis | None = None) -> int:
    client = client or sync_redis()
    return int(client.xlen(STREAM))
