"""Liveness and readiness: what the probes report, and the registry other components add checks to.

The views (/health/liveliness, /health/readiness) live with the URL map (llmur/views.py); this
module decides what they say, so any app can register a readiness check without importing the
project package above it.
"""
from __future__ import annotations

import logging
from typing import Callable

from django.conf import settings
from django.db import connection

from llmur.core.db import watch

logger = logging.getLogger("llmur.health")

Check = Callable[[], tuple[bool, str]]
"""A readiness check: returns (ok, detail); detail is a short text shown in /health/readiness."""

_readiness_checks: dict[str, Check] = {}


def readiness_check(name: str) -> Callable[[Check], Check]:
    """Register a component's readiness check under `name` (decorator)."""
    def register(func: Check) -> Check:
        _readiness_checks[name] = func
        return func
    return register


def database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True, "connected"
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: database unreachable: %s", exc.__class__.__name__)
        return False, f"unreachable ({exc.__class__.__name__})"
    finally:
        # Given back now, so the pool figures below do not count this probe's own connection.
        connection.close()


def cache() -> tuple[bool, str]:
    if settings.LLMUR.cache.engine != "redis":
        return True, "local memory"
    from django_redis import get_redis_connection

    try:
        get_redis_connection("default").ping()
        return True, "connected"
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: cache unreachable: %s", exc.__class__.__name__)
        return False, f"unreachable ({exc.__class__.__name__})"


def checks() -> dict[str, Check]:
    """Every dependency check by name: the database, the cache, then the registered ones."""
    return {"database": database, "cache": cache, **_readiness_checks}


def liveness() -> tuple[int, dict]:
    """Alive unless database connections leaked (never for an outage: see llmur.core.db.ConnectionWatch)."""
    leaked = watch.leaked()
    if leaked:
        return 503, {"status": "unhealthy", "reason": f"{leaked} pooled database connection(s) checked out for "
                     f"more than {watch.leak_after_s:.0f} s and never returned (a connection leak); "
                     "restart the process"}
    return 200, {"status": "alive"}


def readiness() -> tuple[int, dict]:
    """200 when the database and cache answer; 503 naming what is down otherwise.

    A Redis outage under cache_failure_policy fail_open leaves the gateway serving, so it is
    reported as "degraded" with 200: taking every pod out of rotation would turn a cache outage
    into a full outage.
    """
    db_ok, db_detail = database()
    cache_ok, cache_detail = cache()
    body: dict = {"database": db_detail, "cache": cache_detail}
    pool = watch.pool_usage()
    if pool is not None:
        body["database_pool"] = pool
    down = [name for name, ok in (("database", db_ok), ("cache", cache_ok)) if not ok]
    for name, check in _readiness_checks.items():
        ok, detail = check()
        body[name] = detail
        db_ok = db_ok and ok
        if not ok:
            down.append(name)
    fail_open = settings.LLMUR.config.cache_failure_policy == "fail_open"
    if db_ok and cache_ok:
        body["status"], status = "healthy", 200
    elif db_ok and fail_open:
        body["status"], status = "degraded", 200
    else:
        body["status"], status = "unhealthy", 503
    body["down"] = down
    return status, body
