"""Prometheus metrics: what the gateway counts per request.

The request pipeline calls three functions (which also write the access line, llmur/core/accesslog.py,
and close the trace spans, llmur/core/observability.py): request_rejected() for a request refused
before it was admitted (bad key, bad body, rate limit, budget), request_started() once it is
admitted and request_finished() when it is settled. State read at scrape time instead is in
llmur/core/collectors.py.

Under several worker processes the values live in prometheus_client's multiprocess files (see
llmur/core/observability.py) and a scrape, answered by whichever worker, adds up all of them.
Importing this module creates the counters, and with them this process's files: only processes
that serve requests import it (not gunicorn's master, which must not leave a live gauge behind).
"""
from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

from llmur.core import accesslog, observability

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


def request_rejected(error: Any, request_id: str = "", client_request_id: str = "") -> None:
    """A request answered with an error before admission (no model group or deployment yet)."""
    _access(accesslog.request_rejected, error, request_id, client_request_id)
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
        ctx.metrics_in_flight = True
    except Exception:  # noqa: BLE001
        logger.exception("metrics: recording a started request failed")


def request_finished(ctx: Any) -> None:
    """Everything known about an admitted request once it is settled."""
    _access(accesslog.request_finished, ctx)
    _access(observability.request_finished, ctx)
    if not _recording():
        return
    try:
        if ctx.metrics_in_flight:
            ctx.metrics_in_flight = False
            IN_FLIGHT.dec()
        model, deployment = ctx.model, ctx.deployment_id
        _child(REQUESTS, model, deployment, str(ctx.http_status)).inc()
        ended = ctx.ended_monotonic or time.monotonic()
        total = max(0.0, ended - ctx.started_monotonic)
        _child(REQUEST_SECONDS, model).observe(total)
        upstream_started = ctx.upstream_started
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
