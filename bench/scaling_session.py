"""One llmur under measurement for `python -m bench.scaling`: its processes, keys and observers.

A session is llmur started the way `python -m bench` starts it (fresh PostgreSQL database, gunicorn,
a Celery worker draining spend, the project's fake provider upstream) against a private
redis-server, so every Redis counter belongs to it. Each measurement pauses the Celery worker
(SIGSTOP) while the requests are sent, so the Redis traffic of the gateway and of the worker are
counted apart: first the gateway's, until its write-behind has queued every spend event, then the
worker's, until it has drained the stream and PostgreSQL's counters have stopped moving.

The worker runs without beat here: the session sends it the drain (and rollup) task itself, as beat
would every 2 s (every minute), so no scheduled job lands inside another kind's counts. A backend
publishes its statistics at most every second and, after a burst, up to 10 s later
(PGSTAT_IDLE_INTERVAL), so each kind ends with 11 s in which PostgreSQL's counters must not move.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Callable

from bench.counters import (
    MonitorTap,
    PgObserver,
    RedisObserver,
    cpu_ns,
    local_ports,
    pg_diff,
    process_tree,
    redis_diff,
)
from bench.procs import BenchError, Cores, Managed, start_mock, start_redis
from bench.scaling_kinds import Kind, body, drive
from bench.servers import BENCH_MODEL, LlmurServer, llmur_start

SPEND_STREAM = "llmur:spend:events"    # billing.connections.STREAM: one entry per settled request
PG_QUIET_S = 11.0                      # PostgreSQL's PGSTAT_IDLE_INTERVAL is 10 s
RESPONSE_CACHE = {"litellm_settings": {"cache": True, "cache_params": {"type": "redis", "ttl": 3600}}}


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return round(time.monotonic() - started, 3)


class Session:
    """llmur + Celery + a private Redis + the fake provider, and the observers of their counters."""

    def __init__(self, *, cores: Cores, workdir: Path, database_url: str, workers: int, cache: bool,
                 database_template: str | None, log: Callable[[str], None], beat: bool = False):
        self.log, self.procs, self.closers = log, [], []
        self.nonce = secrets.token_hex(4)
        try:
            self.mock = self._own(start_mock(cores, workdir))
            self.redis = self._own(start_redis(cores, workdir))
            self.server: LlmurServer = llmur_start(
                cores=cores, workdir=workdir, mock_url=self.mock.extra["url"], database_url=database_url,
                redis_url=self.redis.extra["url"], database_template=database_template, workers=workers,
                extra_config=RESPONSE_CACHE if cache else None, beat=beat)
            self.procs += [p for p in (self.server.web, self.server.worker) if p]
            self.robs = RedisObserver(self.redis.extra["port"], 1)
            self.closers.append(self.robs.close)
            self.pg = PgObserver(database_url)
            self.closers.append(self.pg.close)
            from celery import Celery

            self.celery = None if beat else Celery("bench", broker=self.redis.extra["url"])
            if self.celery is not None:
                self.closers.append(self.celery.close)
            self.keys = {"bench": self.server.key, "budget": self._key({"max_budget": 0.0001}),
                         "rpm": self._key({"rpm_limit": 1})}
        except BaseException:
            self.close()
            raise

    def _own(self, proc: Managed) -> Managed:
        self.procs.append(proc)
        return proc

    def _key(self, fields: dict) -> str:
        """A virtual key made through the management API, as an operator would."""
        request = urllib.request.Request(
            f"{self.server.url}/key/generate", data=json.dumps({"models": [BENCH_MODEL]} | fields).encode(),
            headers={"Authorization": f"Bearer {self.server.master_key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)["key"]

    # ------------------------------------------------------------------ requests

    def send(self, kind: Kind, n: int, connections: int = 1, prompt: str | None = None) -> dict:
        prompt = prompt or f"Say hello to the benchmark ({self.nonce})."

        batch = secrets.token_hex(4)    # a unique kind's prompts never repeat an earlier batch's

        def request(i: int) -> tuple[str, bytes]:
            key = "sk-" + secrets.token_urlsafe(24) if kind.key == "bad" else self.keys[kind.key]
            text = f"{prompt} #{batch}-{i}" if kind.unique else prompt
            return key, body(stream=kind.stream, prompt=text)
        return asyncio.run(drive(f"{self.server.url}/v1/chat/completions", n, connections, request))

    def warm(self, kind: Kind) -> None:
        """Bring the key to the state the kind measures: over its budget or rate, or its answer cached."""
        if kind.key in ("budget", "rpm") or kind.name == "cache_hit":
            want = "429" if kind.status == 429 else None
            for _ in range(50):
                got = self.send(kind, 1)
                if (want and want in got["statuses"]) or (not want and got["cache_hits"]):
                    break
                time.sleep(0.1)
            else:
                raise BenchError(f"warm-up of {kind.name}: the key never reached the state measured")
        self.drained()

    # ------------------------------------------------------------------ the worker and the queue

    def worker_signal(self, sig: int) -> None:
        if self.server.worker:
            os.killpg(self.server.worker.process.pid, sig)

    def kick(self, task: str) -> None:
        """Send the worker one of beat's tasks (when there is no beat)."""
        if self.celery is not None:
            self.celery.send_task(task)

    def drained(self, timeout: float = 60) -> float:
        if self.robs.xlen(SPEND_STREAM):
            self.kick("billing.spend_drain")
        return wait_for(lambda: self.robs.xlen(SPEND_STREAM) == 0, timeout=timeout,
                        what="the Celery worker to drain the spend stream")

    def redis_quiet(self, quiet_s: float = 0.5, timeout: float = 10) -> None:
        """Until no command but the observer's reached Redis for quiet_s (the gateway's write-behind and
        response-cache stores are done)."""
        last, since, started = self.robs.snapshot(), time.monotonic(), time.monotonic()
        while time.monotonic() - started < timeout:
            time.sleep(0.1)
            now = self.robs.snapshot()
            if redis_diff(last, now)["calls"]:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict:
        return {"redis": self.robs.snapshot(), "pg": self.pg.snapshot(),
                "gateway_cpu_ns": cpu_ns(process_tree(self.server.pid)),
                "worker_cpu_ns": cpu_ns(process_tree(self.server.worker.process.pid)) if self.server.worker else 0,
                "at": time.monotonic()}

    @staticmethod
    def diff(a: dict, b: dict) -> dict:
        return {"redis": redis_diff(a["redis"], b["redis"]), "pg": pg_diff(a["pg"], b["pg"]),
                "gateway_cpu_ms": round((b["gateway_cpu_ns"] - a["gateway_cpu_ns"]) / 1e6, 3),
                "worker_cpu_ms": round((b["worker_cpu_ns"] - a["worker_cpu_ns"]) / 1e6, 3),
                "seconds": round(b["at"] - a["at"], 3)}

    def idle(self, seconds: float, quiet_s: float = PG_QUIET_S) -> dict:
        """Background per second with nothing sent: the gateway alone (worker paused), then everything."""
        result = {}
        for part, paused in (("gateway", True), ("all", False)):
            if paused:
                self.worker_signal(signal.SIGSTOP)
            try:
                self.pg.settle(writes_at_least=0, base=self.pg.database(), timeout=60, quiet_s=quiet_s)
                a = self.snapshot()
                time.sleep(seconds)   # a fixed window is the measurement itself here, not a wait
                result[part] = self.diff(a, self.snapshot())
            finally:
                self.worker_signal(signal.SIGCONT)
        return result

    def measure(self, kind: Kind, n: int, connections: int) -> dict:
        """n requests of one kind: the gateway's share (worker paused), then the worker's (its drain)."""
        self.warm(kind)
        self.pg.settle(writes_at_least=0, base=self.pg.database(), timeout=60, quiet_s=PG_QUIET_S)
        self.worker_signal(signal.SIGSTOP)
        try:
            a = self.snapshot()
            sent = self.send(kind, n, connections)
            events = n if kind.billed else 0
            queued_s = wait_for(lambda: self.robs.xlen(SPEND_STREAM) >= events, timeout=60,
                                what=f"{events} spend events from the gateway")
            self.redis_quiet()
            self.pg.settle(writes_at_least=0, base=self.pg.database(), timeout=15)
            b = self.snapshot()
        finally:
            self.worker_signal(signal.SIGCONT)
        drain_s = self.drained()
        # The worker's rows: one insert and one booking update per event, at least.
        self.pg.settle(writes_at_least=2 * events, base=b["pg"]["database"], timeout=60, quiet_s=PG_QUIET_S)
        c = self.snapshot()
        return {"kind": kind.name, "n": n, "connections": connections, "sent": sent, "expected_status": kind.status,
                "queued_s": queued_s, "drain_s": drain_s,
                "gateway": self.diff(a, b), "worker": self.diff(b, c)}

    def classify(self, kind: Kind, n: int, connections: int) -> dict:
        """n more requests under MONITOR: which commands were round trips from the gateway or the worker
        and which ran inside scripts (EVALSHA's own calls), per request. Nothing is timed meanwhile."""
        self.warm(kind)
        tap = MonitorTap(self.redis.extra["port"])
        try:
            self.send(kind, n, connections)
            self.drained()
            self.redis_quiet()
        finally:
            seen = tap.stop()
        parts = {"gateway": local_ports(process_tree(self.server.pid)),
                 "worker": local_ports(process_tree(self.server.worker.process.pid)) if self.server.worker else set()}
        out: dict[str, Counter[str]] = {"gateway": Counter(), "worker": Counter(), "scripts": Counter(),
                                        "other": Counter()}
        for (source, name), count in seen.items():
            part = "scripts" if source == "lua" else next((p for p, ports in parts.items() if source in ports), "other")
            out[part][name] += count
        return {"requests": n, "connections": connections} | {
            part: {name: round(count / n, 3) for name, count in sorted(counts.items())} for part, counts in out.items()}

    def rollup(self, timeout: float = 90) -> dict:
        """The rollup of SpendLog into DailySpend (beat's job every minute), sent and counted on its own."""
        a = self.snapshot()
        pending = lambda: self.pg.bench.execute(  # noqa: E731
            "SELECT count(*) FROM billing_spendlog WHERE NOT rolled_up").fetchone()[0]
        rows = pending()
        polls = [0]
        self.kick("billing.daily_spend_rollup")

        def done() -> bool:
            polls[0] += 1
            time.sleep(0.5)
            return pending() == 0
        waited = wait_for(done, timeout=timeout, what="the DailySpend rollup")
        self.pg.settle(writes_at_least=rows, base=a["pg"]["database"], timeout=60, quiet_s=PG_QUIET_S)
        result = self.diff(a, self.snapshot())
        # The observer's own reads of the bench database are transactions too.
        result["pg"]["database"]["xact_commit"] -= 1 + polls[0]
        return {"rows": rows, "waited_s": waited} | result

    def close(self) -> None:
        for closer in self.closers:
            try:
                closer()
            except Exception:  # noqa: BLE001 - closing must not hide the run's result
                pass
        for proc in reversed(self.procs):
            proc.stop()
