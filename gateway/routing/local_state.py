"""Routing state in this process: embedded mode, and Redis's stand-in while Redis is down."""
from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence

from gateway.routing.counters import FAIL_WINDOW_S, LATENCY_SAMPLES, LATENCY_TTL_S, Counters, minute_of


class LocalState:
    """The in-process state of embedded mode (and Redis's stand-in while Redis is down)."""

    def __init__(self) -> None:
        self._cooldown_until: dict[str, float] = {}
        self._fails: dict[str, tuple[float, int]] = {}
        self._in_flight: dict[str, int] = defaultdict(int)
        self._minute = 0
        self._rpm: dict[str, int] = defaultdict(int)
        self._tpm: dict[str, int] = defaultdict(int)
        self._latency: dict[str, tuple[float, deque]] = {}
        self._ttft: dict[str, tuple[float, deque]] = {}

    def cooled_ids(self, now: float | None = None) -> frozenset[str]:
        now = time.time() if now is None else now
        return frozenset(i for i, until in self._cooldown_until.items() if until > now)

    async def read(self, ids: Sequence[str], need: str | None) -> tuple[frozenset[str], Counters]:
        now = time.time()
        counters = Counters()
        if need == "in_flight":
            counters.in_flight = {i: self._in_flight.get(i, 0) for i in ids}
        elif need == "usage":
            self._roll(now)
            counters.rpm = {i: self._rpm.get(i, 0) for i in ids}
            counters.tpm = {i: self._tpm.get(i, 0) for i in ids}
        elif need == "latency":
            counters.latency = self._samples(self._latency, ids, now)
            counters.ttft = self._samples(self._ttft, ids, now)
        return self.cooled_ids(now), counters

    def started(self, deployment_id: str, need: str | None) -> None:
        if need == "in_flight":
            self._in_flight[deployment_id] += 1
        elif need == "usage":
            self._roll(time.time())
            self._rpm[deployment_id] += 1

    def finished(self, deployment_id: str, need: str | None, *, latency: float | None = None,
                 ttft: float | None = None, tokens: int = 0) -> None:
        now = time.time()
        if need == "in_flight":
            self._in_flight[deployment_id] = max(0, self._in_flight[deployment_id] - 1)
        elif need == "usage":
            self._roll(now)
            self._tpm[deployment_id] += tokens
        elif need == "latency":
            for store, value in ((self._latency, latency), (self._ttft, ttft)):
                if value is not None:
                    _, samples = store.get(deployment_id) or (now, deque(maxlen=LATENCY_SAMPLES))
                    samples.appendleft(value)
                    store[deployment_id] = (now, samples)

    async def failed(self, deployment_id: str, *, allowed_fails: int, cooldown_time: float) -> bool:
        """Count a failure; cool the deployment down when it passes allowed_fails within the window."""
        now = time.time()
        start, count = self._fails.get(deployment_id, (now, 0))
        if now - start >= FAIL_WINDOW_S:
            start, count = now, 0
        count += 1
        if count > allowed_fails and cooldown_time > 0:
            self._cooldown_until[deployment_id] = now + cooldown_time
            self._fails.pop(deployment_id, None)
            return True
        self._fails[deployment_id] = (start, count)
        return False

    async def cooldowns(self) -> dict[str, float]:
        """Deployment id → seconds of cooldown left, for those cooling down now."""
        now = time.time()
        return {i: until - now for i, until in self._cooldown_until.items() if until > now}

    async def close(self) -> None:
        return None

    def _roll(self, now: float) -> None:
        minute = minute_of(now)
        if minute != self._minute:
            self._minute = minute
            self._rpm.clear()
            self._tpm.clear()

    @staticmethod
    def _samples(store: dict[str, tuple[float, deque]], ids: Iterable[str], now: float) -> dict[str, list[float]]:
        result = {}
        for i in ids:
            entry = store.get(i)
            if entry and now - entry[0] < LATENCY_TTL_S:
                result[i] = list(entry[1])
        return result
