"""gateway's scrape-time metrics: deployments cooling down now (registered in apps.py)."""
from __future__ import annotations

import time
from typing import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from billing.connections import redis_configured, sync_redis
from gateway.routing.redis_state import COOLDOWNS


class CooldownCollector:
    """llmur_deployment_cooldown_seconds: seconds of cooldown left per deployment, shared through Redis."""

    def collect(self) -> Iterable[Metric]:
        if not redis_configured():
            return
        now = time.time()
        try:
            cooling = sync_redis().zrangebyscore(COOLDOWNS, now, "+inf", withscores=True)
        except Exception:  # noqa: BLE001 - reported as llmur_dependency_up{dependency="cache"} already
            return
        family = GaugeMetricFamily("llmur_deployment_cooldown_seconds",
                                   "Seconds of cooldown left, per deployment cooling down now", labels=["deployment"])
        for deployment, until in cooling:
            family.add_metric([deployment.decode() if isinstance(deployment, bytes) else str(deployment)],
                              max(0.0, until - now))
        yield family
