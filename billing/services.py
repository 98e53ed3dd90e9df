"""Writes of the billing app: recording spend, resetting budgets, rolling up daily spend.

Every function here is safe to run twice, or in two workers at once, on the same input: the
database (unique request_id, row locks, conditional UPDATEs) is the arbiter, never a Python
read-modify-write.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any, Iterable

from django.db import OperationalError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.durations import parse_duration
from accounts.models import EndUser, Organization, Project, Team, TeamMembership, User, VirtualKey
from billing.alerts import budget_alerts_check
from billing.events import event_cost, recorders
from billing.models import DailySpend, JobLock, SpendLog
from billing.pricing import quantize
from billing.rollups import spend_rollups_refresh
from llmur.core.scrub import scrub_secrets

logger = logging.getLogger("llmur.billing")

# Entity kind → (model, SpendLog column). The order is also the lock order, so two workers
# booking overlapping batches take row locks in the same sequence and cannot deadlock.
ENTITIES: tuple[tuple[str, Any, str], ...] = (
    ("key", VirtualKey, "key_id"),
    ("user", User, "user_id"),
    ("project", Project, "project_id"),
    ("team", Team, "team_id"),
    ("organization", Organization, "organization_id"),
)
# End users are named by the text of SpendLog.end_user, not by a column of ids: booked by name below.
# Team members (a user's budget in a team, LiteLLM's max_budget_in_team) by their (team_id, user_id).
ENTITY_MODELS = {**{kind: model for kind, model, _ in ENTITIES}, "end_user": EndUser,
                 "team_member": TeamMembership}

def _int(value: Any, default: int = 0, high: int = 2**31 - 1) -> int:
    try:
        return max(0, min(int(value), high))
    except (TypeError, ValueError):
        return default


def _optional_id(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _when(value: Any) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    return parsed or timezone.now()


def spend_log_from_event(event: dict[str, Any]) -> SpendLog:
    prompt, completion = _int(event.get("prompt_tokens")), _int(event.get("completion_tokens"))
    return SpendLog(
        request_id=str(event["request_id"])[:64],
        client_request_id=str(event.get("client_request_id") or "")[:128],
        response_id=str(event.get("response_id") or "")[:128],
        key_id=_optional_id(event.get("key_id")),
        user_id=_optional_id(event.get("user_id")),
        project_id=_optional_id(event.get("project_id")),
        team_id=_optional_id(event.get("team_id")),
        organization_id=_optional_id(event.get("organization_id")),
        key_display=str(event.get("key_display") or "")[:32],
        call_type=str(event.get("call_type") or "chat")[:32],
        model=str(event.get("model") or "")[:200],
        deployment=str(event.get("deployment") or "")[:200],
        provider=str(event.get("provider") or "")[:32],
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=min(prompt + completion, 2**31 - 1),
        cost=quantize(event_cost(event)),
        status=SpendLog.Status.SUCCESS if event.get("success", True) else SpendLog.Status.FAILURE,
        http_status=_int(event.get("http_status"), 200, 32767),
        latency_ms=_int(event.get("latency_ms")),
        ttft_ms=None if event.get("ttft_ms") is None else _int(event.get("ttft_ms")),
        started_at=_when(event.get("started_at")),
        ended_at=_when(event.get("ended_at") or event.get("started_at")),
        cache_hit=bool(event.get("cache_hit")),
        stream=bool(event.get("stream")),
        end_user=str(event.get("end_user") or "")[:200],
        metadata=event.get("metadata") if isinstance(event.get("metadata"), dict) else {},
        error_message=scrub_secrets(str(event.get("error") or "")),
        booked=False,
        rolled_up=False,
    )


def spend_record_batch(*, events: Iterable[dict[str, Any]]) -> int:
    """Insert SpendLog rows for events (idempotent on request_id) and book their cost once.

    Returns how many events were new. A redelivered event finds its row already inserted and
    booked, so neither the row nor the owners' spend changes. Two workers racing on the same
    event serialize on the row: the second sees booked=True after the first commits. A deadlock
    between such workers (MySQL's gap locks on INSERT IGNORE) rolls the whole batch back, so it
    is simply retried.
    """
    events = list(events)
    attempts = 1 if connection.in_atomic_block else 5
    for attempt in range(attempts):
        try:
            return _record_batch(events)
        except OperationalError as exc:
            if attempt == attempts - 1 or not _is_deadlock(exc):
                raise
            time.sleep(0.01 * (attempt + 1))
    return 0


def _is_deadlock(exc: OperationalError) -> bool:
    text = str(exc).lower()
    return "deadlock" in text or "try restarting transaction" in text or "could not serialize" in text


@transaction.atomic
def _record_batch(events: list[dict[str, Any]]) -> int:
    rows: dict[str, SpendLog] = {}
    for event in events:
        row = spend_log_from_event(event)
        rows.setdefault(row.request_id, row)
    if not rows:
        return 0
    SpendLog.objects.bulk_create(list(rows.values()), ignore_conflicts=True, batch_size=500)
    fresh = list(
        SpendLog.objects.select_for_update()
        .filter(request_id__in=list(rows), booked=False)
        .order_by("pk")
        .values_list("pk", "request_id", "cost", "end_user", "key_id", "user_id", "project_id", "team_id",
                     "organization_id")
    )
    if not fresh:
        return 0
    totals: dict[str, dict[int, Decimal]] = {kind: defaultdict(Decimal) for kind, _, _ in ENTITIES}
    end_users: dict[str, Decimal] = defaultdict(Decimal)
    members: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for pk, _, cost, end_user, *owners in fresh:
        for (kind, _, _), owner in zip(ENTITIES, owners):
            if owner is not None and cost:
                totals[kind][owner] += cost
        if end_user:
            end_users[end_user] += cost
        _, user_id, _, team_id, _ = owners
        if team_id is not None and user_id is not None and cost:
            members[(team_id, user_id)] += cost
    for kind, model, _ in ENTITIES:
        for owner in sorted(totals[kind]):
            model.objects.filter(pk=owner).update(spend=F("spend") + totals[kind][owner])
    _book_end_users(end_users)
    _book_team_members(members)
    SpendLog.objects.filter(pk__in=[row[0] for row in fresh]).update(booked=True)
    key_last_used_touch(used={row.key_id: row.ended_at for row in rows.values() if row.key_id is not None})
    # The owners' rows are locked by the UPDATEs above: the spend alerts read back is exact.
    budget_alerts_check(booked=totals)
    if recorders:
        first_time = {row[1] for row in fresh}
        recorded = [event for event in events if event.get("request_id") in first_time]
        for recorder in recorders:
            recorder(events=recorded)
    return len(fresh)


LAST_USED_THROTTLE = timedelta(minutes=1)
# Key id -> the last_used_at this process last wrote: within the throttle it writes nothing, not
# even a conditional UPDATE, so a busy key costs one statement a minute per worker.
_last_used_written: dict[int, datetime] = {}


def key_last_used_touch(*, used: dict[int, datetime]) -> int:
    """Move VirtualKey.last_used_at forward to when each key was last used, at most once a minute.

    Called with the spend events being booked, so the request path never writes it. The UPDATE is
    conditional (NULL, or older than the throttle window), so other workers booking the same key
    within the window write nothing either. Returns how many keys were written.
    """
    written = 0
    for key_id in sorted(used):
        when = used[key_id]
        previous = _last_used_written.get(key_id)
        if previous is not None and when - previous < LAST_USED_THROTTLE:
            continue
        written += VirtualKey.objects.filter(pk=key_id).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=when - LAST_USED_THROTTLE)).update(last_used_at=when)
        _last_used_written[key_id] = when
    if len(_last_used_written) > 100_000:
        _last_used_written.clear()
    return written


def _book_end_users(costs: dict[str, Decimal]) -> None:
    """Each end user's spend, by the name requests gave; a name seen for the first time gets its row (no limits).

    As LiteLLM does ("the customer is upserted with its spend"), so /customer/info answers for every
    end user that has made requests. The rows are plain labels: they grant nothing.
    """
    if not costs:
        return
    names = sorted(costs)
    EndUser.objects.bulk_create([EndUser(user_id=name) for name in names], ignore_conflicts=True, batch_size=500)
    for name in names:
        if costs[name]:
            EndUser.objects.filter(user_id=name).update(spend=F("spend") + costs[name])


def _book_team_members(costs: dict[tuple[int, int], Decimal]) -> None:
    """A member's spend in a team: what their keys of that team spent (rows of people in no team, none)."""
    for team_id, user_id in sorted(costs):
        TeamMembership.objects.filter(team_id=team_id, user_id=user_id).update(
            spend=F("spend") + costs[(team_id, user_id)])


def budget_reset_due(*, now: datetime | None = None) -> list[tuple[str, int]]:
    """Reset the spend of every entity whose budget period has passed; returns what was reset.

    The UPDATE is conditional on the budget_reset_at it read, so a second run (or a concurrent
    one) that read the same value matches no row and resets nothing: each period resets once.
    Entities with a budget_duration but no budget_reset_at yet get their first reset time.
    """
    now = now or timezone.now()
    reset: list[tuple[str, int]] = []
    for kind, model in ENTITY_MODELS.items():
        if kind == "team_member":
            continue   # a member's budget in a team has no period of its own
        base = model.objects.exclude(budget_duration="")
        for pk, duration in base.filter(budget_reset_at__isnull=True).values_list("pk", "budget_duration"):
            period = parse_duration(duration)
            if period:
                model.objects.filter(pk=pk, budget_reset_at__isnull=True).update(budget_reset_at=now + period)
        for pk, duration, reset_at in base.filter(budget_reset_at__lte=now).values_list(
                "pk", "budget_duration", "budget_reset_at"):
            period = parse_duration(duration)
            if period is None:
                continue
            changed = model.objects.filter(pk=pk, budget_reset_at=reset_at).update(
                spend=Decimal(0), budget_reset_at=now + period)
            if changed:
                reset.append((kind, pk))
    if reset:
        logger.info("budgets reset: %s", ", ".join(f"{kind} {pk}" for kind, pk in reset))
    return reset


ROLLUP_BATCH = 5000
GROUP_FIELDS = ("key_id", "user_id", "project_id", "team_id", "organization_id", "model")


def _lock(name: str) -> None:
    JobLock.objects.get_or_create(name=name)
    JobLock.objects.select_for_update().get(name=name)


def daily_spend_rollup(*, max_rows: int = 200_000) -> list[date]:
    """Recompute DailySpend for every day that has SpendLog rows not yet rolled up.

    Rows are marked first and their days recomputed from all of that day's rows in the same
    transaction, so a row that commits meanwhile is either seen by the recompute or left
    unmarked for the next run; recomputing a day twice gives the same rows (idempotent).
    DailySpend's owner columns are nullable, which unique constraints treat as distinct, so a
    day is replaced (delete + insert under a lock) rather than upserted with ON CONFLICT.
    """
    days: set[date] = set()
    done = 0
    while done < max_rows:
        with transaction.atomic():
            _lock("daily_spend_rollup")
            pks = list(SpendLog.objects.filter(rolled_up=False).order_by("pk")
                       .values_list("pk", flat=True)[:ROLLUP_BATCH])
            if not pks:
                break
            # Days are UTC days (TIME_ZONE is UTC), like DailySpend's.
            batch_days = {when.astimezone(dt_timezone.utc).date() for when in SpendLog.objects.filter(pk__in=pks)
                          .values_list("started_at", flat=True)}
            SpendLog.objects.filter(pk__in=pks).update(rolled_up=True)
            for day in sorted(batch_days):
                _recompute_day(day)
            days |= batch_days
            done += len(pks)
    if days:
        # The coarse rollups follow the days just replaced (billing/rollups.py).
        spend_rollups_refresh()
    return sorted(days)


def _recompute_day(day: date) -> None:
    start = datetime.combine(day, datetime.min.time(), tzinfo=dt_timezone.utc)
    end = start + timedelta(days=1)
    groups = (SpendLog.objects.filter(started_at__gte=start, started_at__lt=end)
              .order_by().values(*GROUP_FIELDS)
              .annotate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), total_cost=Sum("cost"),
                        n=Count("pk"), failed=Count("pk", filter=Q(status=SpendLog.Status.FAILURE)),
                        hits=Count("pk", filter=Q(cache_hit=True))))
    rows = [DailySpend(day=day, model=g["model"], key_id=g["key_id"], user_id=g["user_id"],
                       project_id=g["project_id"], team_id=g["team_id"], organization_id=g["organization_id"],
                       prompt_tokens=g["prompt"] or 0, completion_tokens=g["completion"] or 0,
                       cost=g["total_cost"] or Decimal(0), requests=g["n"], failed_requests=g["failed"],
                       cache_hits=g["hits"])
            for g in groups]
    DailySpend.objects.filter(day=day).delete()
    DailySpend.objects.bulk_create(rows, batch_size=500)
