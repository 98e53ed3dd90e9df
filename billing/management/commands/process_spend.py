"""`manage.py process_spend`: drain the spend queue once, reset due budgets, roll up daily spend."""
from __future__ import annotations

import redis
from django.core.management.base import BaseCommand, CommandError

from billing.connections import redis_configured
from billing.queue import backlog, drain
from billing.services import daily_spend_rollup
from billing.tasks import budget_reset
from billing.writer import spool_replay


class Command(BaseCommand):
    help = ("Record every spend event waiting in the Redis stream (and any spooled on disk), reset the "
            "budgets whose period passed, and roll SpendLog up into DailySpend. Safe to run at any time, "
            "also while Celery workers run: every step is idempotent.")

    def add_arguments(self, parser):
        parser.add_argument("--no-rollup", action="store_true", help="skip the DailySpend rollup")
        parser.add_argument("--max-seconds", type=float, default=300.0,
                            help="stop draining after this long (default 300)")

    def handle(self, *args, **options):
        drained = 0
        if redis_configured():
            try:
                drained = drain(max_seconds=options["max_seconds"])
                left = backlog()
            except redis.RedisError as exc:
                raise CommandError(f"cannot reach Redis to drain the spend queue: {exc.__class__.__name__}") from None
            self.stdout.write(f"spend queue: {drained} new SpendLog rows, {left} events left")
        replayed = spool_replay()
        if replayed:
            self.stdout.write(f"spend spool: {replayed} new SpendLog rows")
        self.stdout.write(f"budgets reset: {budget_reset()}")
        if not options["no_rollup"]:
            days = daily_spend_rollup()
            self.stdout.write(f"daily spend recomputed for {len(days)} day(s)"
                              + (f": {', '.join(d.isoformat() for d in days)}" if days else ""))
