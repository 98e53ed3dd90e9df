"""Prometheus state read when it is scraped, and the exposition text of GET /metrics.

State that is cheaper to read at scrape time than to count per request is reported by collectors:
this module's own (dependency health, the database pool) and those each app registers from its
AppConfig.ready with register_collector() (budgets in accounts, the spend queue in billing,
deployment cooldowns in gateway), so the floor knows no app's tables or Redis keys. The
per-request counters are in llmur/core/metrics.py.
"""
from __future__ import annotations

import os
from typing import Iterable, Protocol

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

from llmur.core import health, observability


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


_collectors: list[Collector] = []


def register_collector(collector: Collector) -> None:
    """Add a collector read at every scrape (an app calls this from its AppConfig.ready).

    A collector's collect() yields metric families; it may query the database or Redis, and should
    swallow their failures (an unreachable dependency is reported by llmur_dependency_up already).
    """
    if collector not in _collectors:
        _collectors.append(collector)


class DependencyCollector:
    """Each dependency check of llmur.core.health as llmur_dependency_up, and this worker's database pool."""

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("llmur_dependency_up", "1 when the dependency answers, else 0", labels=["dependency"])
        for name, check in health.checks().items():
            try:
                ok = bool(check()[0])
            except Exception:  # noqa: BLE001 - a failing check is a down dependency, not a failed scrape
                ok = False
            up.add_metric([name], 1.0 if ok else 0.0)
        yield up
        yield from self._database_pool()

    def _database_pool(self) -> Iterable[Metric]:
        """The PostgreSQL connection pool of the process answering the scrape (each worker has its own)."""
        from django.db import connections

        pool = getattr(connections["default"], "pool", None)
        if pool is None:
            return
        stats = pool.get_stats()
        family = GaugeMetricFamily("llmur_db_pool_connections", "Database pool of one worker process: open, idle "
                                   "connections and requests waiting for one", labels=["pid", "state"])
        pid = str(os.getpid())
        for state, key in (("open", "pool_size"), ("idle", "pool_available"), ("waiting", "requests_waiting")):
            family.add_metric([pid, state], float(stats.get(key, 0)))
        yield family


register_collector(DependencyCollector())


def render() -> bytes:
    """The exposition text: every process's counters under multiprocess mode (else this process's), then
    the scrape-time collectors of the process answering."""
    if observability.multiprocess:
        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)
    else:
        counters = REGISTRY
    state = CollectorRegistry()
    for collector in _collectors:
        state.register(collector)
    return generate_latest(counters) + generate_latest(state)
