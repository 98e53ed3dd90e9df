"""Admission and settlement of each request against budgets and rate limits.

Contract with the pipeline (gateway/pipeline.py, gateway/settlement.py):
  * ``await admit(ctx)`` runs after authorization and before the upstream call. It raises
    LlmurError(429, ...) when a budget or limit refuses the request, else stores what it
    reserved in ctx.reservation.
  * ``await settle(ctx)`` runs exactly once for every admitted request, after the answer (or the
    failure, or the client's disconnect), with ctx.usage / ctx.http_status / ctx.success filled.
    It releases the reservation, books the real cost and records the spend event durably.

How (DESIGN.md, hot path steps 3 and 8):
  * With Redis, admission is one EVALSHA of lua/admit.lua: rpm (sliding one-minute log), tpm
    (per-minute counter), max_parallel_requests and budget headroom for the key, its user,
    project, team and organization and the deployment, and, only if all pass, the reservation
    of the request's estimated cost and of its parallel slot. Settlement is one EVALSHA of
    lua/settle.lua: release, book real cost and tokens, XADD the spend event to the stream that
    Celery drains into SpendLog (billing.queue). No database access on either path.
  * Budgets: Redis holds each entity's spend for the current period. A missing counter (first
    use, Redis restarted, budget reset) is rebuilt from the database plus the events still in
    the stream, then admission is retried. Admission passes while settled spend plus in-flight
    reservations is below max_budget, so concurrent requests overshoot by at most one
    reservation. soft_budget only warns: a log line and the response header
    ``x-llmur-budget-warning``.
  * Redis unreachable, cache_failure_policy fail_open: limits fall back to per-process counters
    with each limit divided by the number of workers (a budget's remaining headroom too), spend
    events go to the in-process batch writer (database, else a spool file). When Redis answers
    again the budget counters this process spent against are dropped, so they are rebuilt from
    the database. fail_closed: 503. Either way a log line, a metric and /health/readiness say so.
  * Embedded mode (cache engine local): the same per-process counters, undivided, and the same
    batch writer, which also runs budget resets and the daily rollup.
"""
from gateway.admission import lifecycle  # noqa: F401 - registers start-up, shutdown and readiness hooks
from gateway.admission.admit import admit
from gateway.admission.entities import Reservation
from gateway.admission.settle import settle

__all__ = ["Reservation", "admit", "settle"]
