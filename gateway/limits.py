"""Admission and settlement of each request against budgets and rate limits.

Contract with the pipeline (gateway/pipeline.py):
  * ``await admit(ctx)`` runs after authorization and before the upstream call. It raises
    LlmurError(429, ...) when a budget or limit refuses the request, else stores what it
    reserved in ctx.reservation.
  * ``await settle(ctx)`` runs exactly once for every admitted request, after the answer (or the
    failure, or the client's disconnect), with ctx.usage / ctx.http_status / ctx.success filled.
    It releases the reservation, books the real cost and records the spend event durably.

Interim implementation until the spend/limits work lands: admits everything, records nothing.
"""
from __future__ import annotations

from gateway.context import RequestContext


async def admit(ctx: RequestContext) -> None:
    ctx.reservation = None


async def settle(ctx: RequestContext) -> None:
    return None
