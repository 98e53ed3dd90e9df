"""Database work from async code outside Django's request cycle.

Django's connections are context-local under ASGI: code run through sync_to_async gets the
connection of the calling task, and Django returns it (to the psycopg pool, or closes it) only
when a request finishes. The /v1 path, lifespan tasks and background loops have no such
"finished": a connection they open stays checked out of the pool after their task is gone, and
the pool runs dry (the audit's budget-rebuild leak). Every such call goes through db_call, which
gives its connections back when the function returns or raises.
"""
from __future__ import annotations

import functools
import logging
import time
import weakref
from typing import Any, Callable, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

logger = logging.getLogger("llmur.db")
T = TypeVar("T")


def _giving_connections_back(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            # Always, not close_old_connections(): with the pool (CONN_MAX_AGE 0) that would close
            # too, but on MySQL/SQLite a kept "persistent" connection belongs to a task context
            # that is about to end, so nobody could reuse it. A connection inside a transaction
            # belongs to a caller further out (async_to_sync within atomic()): that caller closes it.
            for connection in connections.all(initialized_only=True):
                if not connection.in_atomic_block:
                    connection.close()
    return call


async def db_call(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a synchronous database function from async code and give its connections back."""
    return await sync_to_async(_giving_connections_back(fn), thread_sensitive=True)(*args, **kwargs)


# --------------------------------------------------------------------------- the leak watchdog

LEAK_AFTER_S = 300.0
"""A pooled connection checked out this long is taken for leaked (if the database answers).

Well above any request or background step llmur runs; a real leak is also never given back, so
the bound only decides how soon liveness says so."""


class ConnectionWatch:
    """Which pooled database connections are checked out, since when, and whether one was never returned.

    Every connect() of a Django connection wrapper is recorded (the connection_created signal; with
    the psycopg pool a connect is a checkout) with its time. A leak is a connection held longer than
    LEAK_AFTER_S, or a checkout the pool still counts after its wrapper is gone (garbage collected
    with its task) for that long, while the database answers a fresh connection of its own. A
    database outage is not a leak: readiness reports it, and liveness stays green so nothing
    restarts pods that serve known keys from their caches.
    """

    def __init__(self, *, leak_after_s: float = LEAK_AFTER_S, clock: Callable[[], float] = time.monotonic,
                 database_answers: Callable[[], bool] | None = None) -> None:
        self.leak_after_s, self.clock = leak_after_s, clock
        self.database_answers = database_answers or _database_answers
        self._checked_out: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
        self._orphans_since: float | None = None
        self._reported = False

    def connected(self, sender: Any = None, connection: Any = None, **_: Any) -> None:
        """connection_created receiver."""
        if connection is not None and connection.alias == "default":
            self._checked_out[connection] = self.clock()

    def pool_usage(self) -> dict[str, int] | None:
        """{"max", "open", "idle", "in_use"} of this process's pool; None without a pool."""
        pool = getattr(connections["default"], "pool", None)
        if pool is None:
            return None
        stats = pool.get_stats()
        opened, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        return {"max": stats.get("pool_max", 0), "open": opened, "idle": idle, "in_use": opened - idle}

    def leaked(self) -> int:
        """How many connections look leaked now (0 while the database does not answer)."""
        usage = self.pool_usage()
        if usage is None:
            return 0
        now = self.clock()
        held = [since for wrapper, since in list(self._checked_out.items()) if wrapper.connection is not None]
        overdue = sum(1 for since in held if now - since > self.leak_after_s)
        orphans = max(0, usage["in_use"] - len(held))
        if not orphans:
            self._orphans_since = None
        elif self._orphans_since is None:
            self._orphans_since = now
        if self._orphans_since is not None and now - self._orphans_since > self.leak_after_s:
            overdue += orphans
        if not overdue or not self.database_answers():
            self._reported = False
            return 0
        if not self._reported:
            self._reported = True
            logger.error("database connection pool leak: %d of %d pooled connections checked out for more than "
                         "%.0f s and never returned; liveness now fails so the process is restarted",
                         overdue, usage["max"], self.leak_after_s)
        return overdue


def _database_answers() -> bool:
    """Can a new connection of its own, outside the pool, reach the database within a few seconds?"""
    import psycopg

    params = dict(connections["default"].get_connection_params())
    params.pop("cursor_factory", None)
    try:
        with psycopg.connect(**params, connect_timeout=3, autocommit=True) as probe:
            probe.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means: not a leak we can tell apart from an outage
        return False


watch = ConnectionWatch()
