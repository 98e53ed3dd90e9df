"""Liveness and readiness probes: /health/liveliness and /health/readiness."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from llmur.core.db import watch

logger = logging.getLogger("llmur.health")

_readiness_checks: dict = {}


def readiness_check(name: str):
    """Register another component's readiness check: a callable returning (ok, detail)."""
    def register(func):
        _readiness_checks[name] = func
        return func
    return register


def liveliness(request):
    """Alive unless database connections leaked (never for an outage: see llmur.core.db.ConnectionWatch)."""
    leaked = watch.leaked()
    if leaked:
        return JsonResponse({"status": "unhealthy", "reason": f"{leaked} pooled database connection(s) checked out "
                             f"for more than {watch.leak_after_s:.0f} s and never returned (a connection leak); "
                             "restart the process"}, status=503)
    return JsonResponse({"status": "alive"})


def _database() -> tuple[bool, str]:
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


def _cache() -> tuple[bool, str]:
    if settings.LLMUR.cache.engine != "redis":
        return True, "local memory"
    from django_redis import get_redis_connection

    try:
        get_redis_connection("default").ping()
        return True, "connected"
    except Exception as exc:  # noqa: BLE001
        logger.warning("readiness: cache unreachable: %s", exc.__class__.__name__)
        return False, f"unreachable ({exc.__class__.__name__})"


def readiness(request):
    """200 when the database and cache answer; 503 naming what is down otherwise.

    A Redis outage under cache_failure_policy fail_open leaves the gateway serving, so it is
    reported as "degraded" with 200: taking every pod out of rotation would turn a cache outage
    into a full outage.
    """
    db_ok, db_detail = _database()
    cache_ok, cache_detail = _cache()
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
        body["status"] = "healthy"
        status = 200
    elif db_ok and fail_open:
        body["status"] = "degraded"
        status = 200
    else:
        body["status"] = "unhealthy"
        status = 503
    body["down"] = down
    return JsonResponse(body, status=status)
