"""Read replicas (database_configuration.replicas): admin pages and spend reports read from them.

Only reads that may be a little behind go to a replica, and only where they were asked for:

- ReplicaReadsMiddleware marks GET/HEAD requests to the admin and the reporting endpoints
  (REPLICA_READ_PATHS); reports_from_replica() marks any other block of code.
- The /v1 hot path runs without middleware and never asks, so its reads, like every write, go to
  the primary. So do the spend writer, the rollups and budget resets (Celery tasks).
- Even inside a marked request, a few models are always read from the primary because what they
  return must reflect a write that just happened: virtual keys (an operator creates one and uses
  it at once), users, sessions and permissions (logging in then loading the next page), and
  anything read inside a transaction on the primary.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from django.conf import settings
from django.db import connections

REPLICA_ALIAS_PREFIX = "replica_"
# Paths whose GET/HEAD requests read from a replica: the admin and the spend/report endpoints.
REPLICA_READ_PATHS = ("/admin/", "/spend/", "/global/spend/")
# Read from the primary even in a marked request (app labels, or app_label.model_name).
PRIMARY_ONLY = frozenset({"sessions", "contenttypes", "auth", "admin", "accounts.user", "accounts.virtualkey"})

_replica_reads: ContextVar[bool] = ContextVar("llmur_replica_reads", default=False)


def replica_aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_ALIAS_PREFIX)]


@contextmanager
def reports_from_replica() -> Iterator[None]:
    """Reads inside this block may come from a replica (a report that tolerates replication lag)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


class ReplicaRouter:
    """DATABASE_ROUTERS entry when replicas are configured; writes and unmarked reads use "default"."""

    def db_for_read(self, model, **hints):
        if not _replica_reads.get():
            return None
        meta = model._meta
        if meta.app_label in PRIMARY_ONLY or meta.label_lower in PRIMARY_ONLY:
            return None
        if connections["default"].in_atomic_block:
            return None   # a transaction on the primary reads what it is about to write
        aliases = replica_aliases()
        return random.choice(aliases) if aliases else None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True   # replicas hold the same rows as the primary

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # Replicas get their schema from the primary through replication.
        return False if db.startswith(REPLICA_ALIAS_PREFIX) else None


class ReplicaReadsMiddleware:
    """Marks GET/HEAD requests to REPLICA_READ_PATHS as allowed to read from a replica."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("GET", "HEAD") and request.path_info.startswith(REPLICA_READ_PATHS):
            with reports_from_replica():
                return self.get_response(request)
        return self.get_response(request)
