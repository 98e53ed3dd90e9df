"""llmur.core's circuit breaker and write-behind flusher, shared by admission and routing state."""
from __future__ import annotations

import asyncio

from llmur.core.breaker import CircuitBreaker
from llmur.core.flusher import WriteBehind


def test_breaker_bypasses_after_a_failure_until_its_retry_time_and_reports_outage_edges():
    breaker = CircuitBreaker(retry_seconds=3600)
    assert breaker.usable() and breaker.down_since is None
    assert breaker.failed() is True            # the outage begins
    assert not breaker.usable()                # bypassed for an hour
    assert breaker.failed() is False           # the same outage
    assert breaker.succeeded() is True         # the outage ends
    assert breaker.usable() and breaker.succeeded() is False

    probing = CircuitBreaker(retry_seconds=0)
    probing.failed()
    assert probing.usable()                    # retry time reached: the next caller probes
    assert probing.down_since is not None      # still counted as down until a success


def test_write_behind_sends_in_order_in_batches_and_stops_after_a_failed_send():
    async def scenario():
        sent: list[list[int]] = []
        release = asyncio.Event()
        outcome = {"ok": True}

        async def send(batch: list[int]) -> bool:
            sent.append(batch)
            await release.wait()
            return outcome["ok"]

        queue: WriteBehind[int] = WriteBehind(send)
        for item in (1, 2, 3):                 # queued before the flusher runs: one batch
            queue.add(item)
        while not sent:
            await asyncio.sleep(0)
        queue.add(4)                           # queued while the first batch is on its way
        queue.add(5)
        release.set()
        await queue.task
        assert sent == [[1, 2, 3], [4, 5]] and queue.pending == []

        outcome["ok"] = False
        release.clear()
        queue.add(6)
        while len(sent) < 3:
            await asyncio.sleep(0)
        queue.add(7)                           # arrives while the failing send is on its way
        release.set()
        await queue.task
        assert sent[2] == [6] and queue.pending == [7]     # kept for the next add

        outcome["ok"] = True
        queue.add(8)
        await queue.task
        assert sent[3] == [7, 8]

        queue.requeue([0])
        assert queue.take() == [0]

    asyncio.run(scenario())
