"""Prometheus metrics: what the gateway counts per request, and GET /metrics.

The request pipeline calls three functions (which also write the access line, llmur/accesslog.py,
and close the trace spans, llmur/observability.py): request_rejected() for a request refused before it
was admitted (bad key, bad body, rate limit, budget), request_started() once it is admitted and
request_finished() when it is settled. Everything else (dependency health, database pool,
spend-queue length and lag, deployment cooldowns) is read at scrape time by a collector, so it
costs nothing per request.

Under several worker processes the values live in prometheus_client's multiprocess files (see
llmur/observability.py) and a scrape, answered by whichever worker, adds up all of them.
"""
from __future__ import annotations

import ipaddress
import logging
import time
from functools import lru_cache
from typing import Any, Iterable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from llmur import accesslog, observability

logger = logging.getLogger("llmur.metrics")

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
# The gateway's own share of a request is meant to stay under a millisecond.
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

REQUESTS = Counter("llmur_requests", "Gateway requests by model group, deployment and HTTP status",
                   ["model", "deployment", "status"])
REQUEST_SECONDS = Histogram("llmur_request_duration_seconds", "Time from arrival to the last byte, by model group",
                            ["model"], buckets=LATENCY_BUCKETS)
UPSTREAM_SECONDS = Histogram("llmur_upstream_duration_seconds",
                             "Time spent waiting on the deployment that answered", ["model", "deployment"],
                             buckets=LATENCY_BUCKETS)
OVERHEAD_SECONDS = Histogram("llmur_gateway_overhead_seconds",
                             "Request time not spent on the answering upstream call: auth, limits, routing, relaying "
                             "(and failed attempts before it)", ["model"],
                             buckets=OVERHEAD_BUCKETS)
TTFT_SECONDS = Histogram("llmur_time_to_first_token_seconds", "Streams: time from arrival to the first part",
                         ["model"], buckets=LATENCY_BUCKETS)
TOKENS = Counter("llmur_tokens", "Tokens by model group, team and direction", ["model", "team", "direction"])
SPEND = Counter("llmur_spend_usd", "Spend in US dollars by model group, team and project", ["model", "team", "project"])
IN_FLIGHT = Gauge("llmur_requests_in_flight", "Admitted requests not finished yet", multiprocess_mode="livesum")
REFUSALS = Counter("llmur_refusals", "Requests refused by a rate limit or a budget", ["reason"])
CACHE_LOOKUPS = Counter("llmur_response_cache_lookups", "Response-cache lookups by model group and result (hit, miss)",
                        ["model", "result"])

# Budget use is read at scrape time; a bound keeps a scrape cheap with thousands of teams.
BUDGET_SERIES_PER_KIND = 200

_REFUSAL_TYPES = {"rate_limit_error": "rate_limit", "budget_exceeded": "budget"}


# --------------------------------------------------------------------------- pipeline hooks

# Label children are looked up once per label set: Metric.labels() takes a lock and builds a key on every call.
_children: dict[tuple, Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    key = (metric._name, labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _recording() -> bool:
    """metrics.enabled: false also skips the per-request bookkeeping, not only the endpoint."""
    return settings.LLMUR.config.metrics.enabled


def _access(write, *args: Any) -> None:
    try:
        write(*args)
    except Exception:  # noqa: BLE001 - logging failure must never fail a request
        logger.exception("request observer %s failed", getattr(write, "__qualname__", write))


def request_rejected(error: Any, request_id: str = "") -> None:
    """A request answered with an error before admission (no model group or deployment yet)."""
    _access(accesslog.request_rejected, error, request_id)
    if not _recording():
        return
    try:
        _child(REQUESTS, "", "", str(error.status)).inc()
        reason = _REFUSAL_TYPES.get(getattr(error, "type", ""))
        if reason:
            _child(REFUSALS, reason).inc()
    except Exception:  # noqa: BLE001 - a metrics failure must never fail a request
        logger.exception("metrics: recording a rejected request failed")


def request_started(ctx: Any) -> None:
    if not _recording():
        return
    try:
        IN_FLIGHT.inc()
        ctx.metadata["_metrics_in_flight"] = True
    except Exception:  # noqa: BLE001
        logger.exception("metrics: recording a started request failed")


def request_finished(ctx: Any) -> None:
    """Everything known about an admitted request once it is settled."""
    _access(accesslog.request_finished, ctx)
    _access(observability.request_finished, ctx)
    if not _recording():
        return
    try:
        if ctx.metadata.pop("_metrics_in_flight", False):
            IN_FLIGHT.dec()
        model, deployment = ctx.model, ctx.deployment_id
        _child(REQUESTS, model, deployment, str(ctx.http_status)).inc()
        ended = ctx.ended_monotonic or time.monotonic()
        total = max(0.0, ended - ctx.started_monotonic)
        _child(REQUEST_SECONDS, model).observe(total)
        upstream_started = ctx.metadata.get("upstream_started")
        if upstream_started is not None and deployment:
            # A streamed answer keeps the upstream busy until its end; a plain one until its body is read.
            upstream_ended = ended if ctx.stream else (ctx.first_byte_monotonic or ended)
            upstream = max(0.0, upstream_ended - upstream_started)
            _child(UPSTREAM_SECONDS, model, deployment).observe(upstream)
            _child(OVERHEAD_SECONDS, model).observe(max(0.0, total - upstream))
        if ctx.stream and ctx.first_byte_monotonic is not None:
            _child(TTFT_SECONDS, model).observe(max(0.0, ctx.first_byte_monotonic - ctx.started_monotonic))
        team = str(ctx.principal.team_id) if ctx.principal is not None and ctx.principal.team_id else ""
        if ctx.usage.prompt_tokens:
            _child(TOKENS, model, team, "prompt").inc(ctx.usage.prompt_tokens)
        if ctx.usage.completion_tokens:
            _child(TOKENS, model, team, "completion").inc(ctx.usage.completion_tokens)
        if ctx.cost:
            project = str(ctx.principal.project_id) if ctx.principal is not None and ctx.principal.project_id else ""
            _child(SPEND, model, team, project).inc(float(ctx.cost))
    except Exception:  # noqa: BLE001
        logger.exception("metrics: recording a finished request failed")


def cache_looked_up(ctx: Any, hit: bool) -> None:
    """One response-cache lookup (gateway/response_cache.py), for the cache hit rate."""
    if not _recording():
        return
    try:
        _child(CACHE_LOOKUPS, ctx.model, "hit" if hit else "miss").inc()
    except Exception:  # noqa: BLE001
        logger.exception("metrics: recording a cache lookup failed")


# --------------------------------------------------------------------------- scrape-time state

class StateCollector:
    """Dependency health, spend-queue length and lag, and deployment cooldowns, measured when Prometheus scrapes."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        from llmur import health

        up = GaugeMetricFamily("llmur_dependency_up", "1 when the dependency answers, else 0", labels=["dependency"])
        checks = {"database": health._database, "cache": health._cache, **health._readiness_checks}
        for name, check in checks.items():
            try:
                ok = bool(check()[0])
            except Exception:  # noqa: BLE001 - a failing check is a down dependency, not a failed scrape
                ok = False
            up.add_metric([name], 1.0 if ok else 0.0)
        yield up
        yield from self._database_pool()
        try:
            yield self._budget_use()
        except Exception:  # noqa: BLE001 - an unreachable database is reported as dependency_up already
            pass
        if settings.LLMUR.cache.engine != "redis":
            return
        try:
            yield from self._redis_state()
        except Exception:  # noqa: BLE001 - reported as dependency_up{dependency="cache"} already
            pass

    def _budget_use(self) -> GaugeMetricFamily:
        """Spend over max_budget of the organizations, teams and projects that have one (the most used first)."""
        from accounts.models import Organization, Project, Team

        family = GaugeMetricFamily("llmur_budget_used_ratio", "Spend in the current budget period over max_budget, "
                                   "per organization, team and project with a max_budget", labels=["kind", "id", "name"])
        for kind, model in (("organization", Organization), ("team", Team), ("project", Project)):
            rows = (model.objects.filter(max_budget__gt=0).order_by("-spend")
                    .values_list("pk", "name", "spend", "max_budget")[:BUDGET_SERIES_PER_KIND])
            for pk, name, spend, max_budget in rows:
                family.add_metric([kind, str(pk), str(name)], float(spend / max_budget))
        return family

    def _database_pool(self) -> Iterable[GaugeMetricFamily]:
        """The PostgreSQL connection pool of the process answering the scrape (each worker has its own)."""
        import os

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

    def _redis_state(self) -> Iterable[GaugeMetricFamily]:
        from billing.connections import STREAM, sync_redis
        from gateway.routing.state import COOLDOWNS

        client = sync_redis()
        now = time.time()
        pipe = client.pipeline(transaction=False)
        pipe.xlen(STREAM)
        pipe.xrange(STREAM, count=1)
        pipe.zrangebyscore(COOLDOWNS, now, "+inf", withscores=True)
        length, oldest, cooling = pipe.execute()
        queue = GaugeMetricFamily("llmur_spend_queue_length", "Spend events waiting in the Redis stream for a worker")
        queue.add_metric([], float(length))
        yield queue
        # Entries are deleted once written to the database, so the oldest one left shows how far behind workers are.
        lag = GaugeMetricFamily("llmur_spend_queue_lag_seconds", "Age of the oldest spend event not yet written")
        oldest_ms = int(oldest[0][0].split(b"-")[0]) if oldest else None
        lag.add_metric([], max(0.0, now - oldest_ms / 1000) if oldest_ms else 0.0)
        yield lag
        cooldown = GaugeMetricFamily("llmur_deployment_cooldown_seconds",
                                     "Seconds of cooldown left, per deployment cooling down now", labels=["deployment"])
        for deployment, until in cooling:
            cooldown.add_metric([deployment.decode() if isinstance(deployment, bytes) else str(deployment)],
                                max(0.0, until - now))
        yield cooldown


# --------------------------------------------------------------------------- GET /metrics

@lru_cache(maxsize=1)
def _allowed_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in settings.LLMUR.config.metrics.allowed_ips)


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _allowed_networks())


_STATE = StateCollector()
if not observability.multiprocess:
    REGISTRY.register(_STATE)


def render() -> bytes:
    """The exposition text: every process's values under multiprocess mode, else this process's."""
    if not observability.multiprocess:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(_STATE)
    return generate_latest(registry)


async def metrics_view(request) -> HttpResponse:
    """GET /metrics for Prometheus: the master key as bearer token, or a client address in metrics.allowed_ips."""
    from gateway import auth
    from llmur.core.errors import LlmurError

    config = settings.LLMUR.config.metrics
    if not config.enabled:
        return HttpResponse(status=404)
    if not _address_allowed(request.META.get("REMOTE_ADDR", "")):
        try:
            principal = await auth.authenticate(auth.key_from_headers(request.META))
        except LlmurError as error:
            return _error(error)
        if not principal.is_master:
            return _error(LlmurError(403, "permission_error", "GET /metrics needs the master key (or a client "
                                     "address in metrics.allowed_ips)."))
    # The health checks behind llmur_dependency_up use the ORM, which is sync-only.
    return HttpResponse(await sync_to_async(render)(), content_type=CONTENT_TYPE_LATEST)


def _error(error: Any) -> HttpResponse:
    from gateway.providers.base import dumps

    return HttpResponse(dumps(error.openai_body()), status=error.status, content_type="application/json")
