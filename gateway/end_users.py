"""End users on the request path: the `user` a request names may be blocked, limited or held to a region.

An end user's rules (accounts.models.EndUser: blocked, budget and rate limits) are looked up by name
through an in-process cache, then Redis, then the database, like keys (gateway.auth), and dropped
the same way: every EndUser save bumps the shared auth version (gateway.signals), which clears the
local caches of every worker. A name with no row, or a row without rules, is cached too ("no
rules"), so steady traffic costs no query whatever its `user` values. Its limits join the key's in
admission (gateway.admission) as one more entity, kind "end_user"; the master key's requests included.
An allowed_model_region keeps its requests on deployments whose litellm_params.region_name is that
region, else on its default_model (gateway.pipeline routes through in_region).
"""
from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import orjson

from accounts.models import EndUser
from gateway import auth, http
from gateway.context import EntityLimits, RequestContext
from llmur.core.db import db_call
from llmur.core.errors import LlmurError, shown

logger = logging.getLogger("llmur.gateway.end_users")

LOCAL_TTL = 60.0          # the auth version drops entries on any change; this only bounds a missed bump
REDIS_TTL = 300
LOCAL_CACHE_MAX = 100_000
LIMIT_FIELDS = ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit", "max_parallel_requests")

# name → (expires at, auth generation, rules or None)
_cache: dict[str, tuple[float, int, dict[str, Any] | None]] = {}


def in_region(deployments: tuple[Any, ...], region: str) -> tuple[Any, ...]:
    """The deployments whose litellm_params name this region (region_name); a deployment without one is in none."""
    return tuple(d for d in deployments if str((d.litellm_params or {}).get("region_name") or "").lower() == region)


def no_region_error(model: str, region: str) -> LlmurError:
    return LlmurError(400, "invalid_request_error", f"This end user may only use models in region {region!r}, and "
                      f"{shown(model)!r} has no deployment there (litellm_params.region_name); give the end user "
                      "a default_model, or add a deployment in that region.", param="user", code="400")


def blocked_error(name: str) -> LlmurError:
    shown = name if len(name) <= 200 else name[:200] + "…"
    return LlmurError(400, "invalid_request_error", f"User blocked from making LLM API Calls. User={shown} "
                      "(an operator can unblock this end user: /customer/unblock).", param="user", code="400")


def end_user_rules(*, name: str) -> dict[str, Any] | None:
    """The end user's rules as a JSON-safe dict, or None when it has none (runs in a worker thread)."""
    row = (EndUser.objects.filter(user_id=name)
           .values("pk", "blocked", "allowed_model_region", "default_model", *LIMIT_FIELDS).first())
    rules = [row[f] for f in LIMIT_FIELDS if f != "budget_duration"] if row is not None else []
    if row is None or not (row["blocked"] or row["allowed_model_region"] or any(v is not None for v in rules)):
        return None
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in row.items()}


async def _lookup(name: str) -> dict[str, Any] | None:
    redis = http.redis()
    version, _ = auth.cache_state()
    redis_key = f"llmur:enduser:{version}:{name}"
    if redis is not None:
        try:
            cached = await redis.get(redis_key)
            if cached is not None:
                return orjson.loads(cached)
        except Exception:  # noqa: BLE001 - fall through to the database
            logger.warning("end-user cache read failed: Redis unreachable")
    try:
        rules = await db_call(end_user_rules, name=name)
    except Exception:  # an end user's rules cannot be checked: fail closed, as for keys
        logger.exception("end-user lookup failed: database unreachable?")
        raise LlmurError(503, "api_error", "The gateway cannot check this request's end user (`user`) right now; "
                         "try again shortly.", code="503") from None
    if redis is not None:
        try:
            await redis.set(redis_key, orjson.dumps(rules), ex=REDIS_TTL)
        except Exception:  # noqa: BLE001
            logger.warning("end-user cache write failed: Redis unreachable")
    return rules


async def check(ctx: RequestContext) -> None:
    """Refuse a blocked end user (400, as LiteLLM); otherwise put its limits, if any, on ctx for admission."""
    name = ctx.end_user
    if not name:
        return
    _, generation = auth.cache_state()
    now = time.monotonic()
    hit = _cache.get(name)
    if hit is not None and hit[0] > now and hit[1] == generation:
        rules = hit[2]
    else:
        rules = await _lookup(name)
        if len(_cache) >= LOCAL_CACHE_MAX:
            _cache.clear()
        if generation == auth.cache_state()[1]:
            _cache[name] = (now + LOCAL_TTL, generation, rules)
    if rules is None:
        return
    if rules["blocked"]:
        raise blocked_error(name)
    ctx.end_user_region = rules.get("allowed_model_region") or ""
    ctx.end_user_default_model = rules.get("default_model") or ""
    if all(rules[f] is None for f in LIMIT_FIELDS if f != "budget_duration"):
        return
    money = {f: Decimal(rules[f]) if rules[f] is not None else None for f in ("max_budget", "soft_budget")}
    ctx.end_user_limits = EntityLimits(
        kind="end_user", id=rules["pk"], name=name[:200], budget_duration=rules["budget_duration"] or "",
        rpm_limit=rules["rpm_limit"], tpm_limit=rules["tpm_limit"],
        max_parallel_requests=rules["max_parallel_requests"], **money)
