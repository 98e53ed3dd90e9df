"""billing's scrape-time metrics: length and lag of the spend queue in Redis (registered in apps.py)."""
from __future__ import annotations

import time
from typing import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from billing.connections import STREAM, redis_configured, sync_redis


class SpendQueueCollector:
    """llmur_spend_queue_length and llmur_spend_queue_lag_seconds, read from the spend stream."""

    def collect(self) -> Iterable[Metric]:
        if not redis_configured():
            return
        try:
            pipe = sync_redis().pipeline(transaction=False)
            pipe.xlen(STREAM)
            pipe.xrange(STREAM, count=1)
            length, oldest = pipe.execute()
        except Exception:  # noqa: BLE001 - reported as llmur_dependency_up{dependency="cache"} already
            return
        queue = GaugeMetricFamily("llmur_spend_queue_length", "Spend events waiting in the Redis stream for a worker")
        queue.add_metric([], float(length))
        yield queue
        # Entries are deleted once written to the database, so the oldest one left shows how far behind workers are.
        lag = GaugeMetricFamily("llmur_spend_queue_lag_seconds", "Age of the oldest spend event not yet written")
        oldest_ms = int(oldest[0][0].split(b"-")[0]) if oldest else None
        lag.add_metric([], max(0.0, time.time() - oldest_ms / 1000) if oldest_ms else 0.0)
        yield lag
