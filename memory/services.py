"""Writes of cross-session memory: turns (from spend events), summaries, deletion and retention."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.keys import secret_encrypt
from billing.services import spend_record_batch
from memory.models import OWNER_FIELDS, MemorySubject, MemorySummary, SessionTurn


def subject_ids(*, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The id of each (scope, subject), created when new: the end user ↔ project mapping."""
    pairs = set(pairs)
    if not pairs:
        return {}
    MemorySubject.objects.bulk_create([MemorySubject(scope=scope, subject=subject) for scope, subject in pairs],
                                      ignore_conflicts=True)
    match = Q()
    for scope, subject in pairs:
        match |= Q(scope=scope, subject=subject)
    return {(scope, subject): pk for pk, scope, subject
            in MemorySubject.objects.filter(match).values_list("pk", "scope", "subject")}


def turns_record(*, events: list[dict[str, Any]]) -> int:
    """Store the session turns that spend events carry (billing calls this in the spend batch's transaction).

    Idempotent on request_id; a malformed turn is skipped rather than failing everyone's spend.
    """
    items = []
    for event in events:
        turn = event.get("memory")
        if isinstance(turn, dict) and all(isinstance(turn.get(f), str) and turn.get(f)
                                          for f in ("scope", "subject", "session_id", "turn", "model")):
            items.append((event, turn))
    if not items:
        return 0
    ids = subject_ids(pairs=[(turn["scope"], turn["subject"]) for _, turn in items])
    rows = []
    for event, turn in items:
        created = parse_datetime(str(event.get("ended_at") or "")) or timezone.now()
        rows.append(SessionTurn(
            subject_id=ids[(turn["scope"], turn["subject"])], session_id=turn["session_id"][:128],
            request_id=str(event["request_id"])[:64], created_at=created,
            idle_at=created + timedelta(minutes=int(turn.get("idle_minutes") or 30)),
            expires_at=created + timedelta(days=int(turn.get("retention_days") or 30)),
            summarizer_model=turn["model"][:200], encrypted_turn=turn["turn"],
            **{name: event.get(name) for name in OWNER_FIELDS}))
    return len(SessionTurn.objects.bulk_create(rows, ignore_conflicts=True))


@transaction.atomic
def summary_record(*, subject_id: int, session_id: str, summary: str, model: str, turn_ids: list[int],
                   started_at: datetime, ended_at: datetime, retention_days: int, spend_event: dict[str, Any],
                   owners: dict[str, int | None]) -> MemorySummary:
    """Store a session's summary, charge its summarization and delete the turns it covers, in one transaction.

    A session summarized before (and resumed since) keeps one summary: the new one, which was
    written from the old one and the new turns.
    """
    spend_record_batch(events=[spend_event])
    fields = dict(encrypted_summary=secret_encrypt(summary), model=model[:200], turns=len(turn_ids),
                  prompt_tokens=int(spend_event.get("prompt_tokens") or 0),
                  completion_tokens=int(spend_event.get("completion_tokens") or 0),
                  summary_tokens=max(1, len(summary) // 4), cost=Decimal(str(spend_event.get("cost") or "0")),
                  request_id=str(spend_event["request_id"])[:64], session_ended_at=ended_at,
                  expires_at=timezone.now() + timedelta(days=retention_days), **owners)
    row, created = MemorySummary.objects.get_or_create(
        subject_id=subject_id, session_id=session_id, defaults={**fields, "session_started_at": started_at})
    if not created:
        for name, value in fields.items():
            setattr(row, name, value)
        row.save(update_fields=list(fields))
    SessionTurn.objects.filter(pk__in=turn_ids).delete()
    return row


def summary_delete(*, summary: MemorySummary) -> None:
    summary.delete()


@transaction.atomic
def end_user_forget(*, end_user: str, visible: Q | None) -> dict[str, int]:
    """Delete everything remembered of one end user that the caller may delete (a privacy request):
    summaries and pending turns in every scope, then the mappings left empty."""
    subjects = MemorySubject.objects.filter(subject=f"end_user:{end_user}")
    summaries = MemorySummary.objects.filter(subject__in=subjects)
    turns = SessionTurn.objects.filter(subject__in=subjects)
    if visible is not None:
        summaries, turns = summaries.filter(visible), turns.filter(visible)
    counts = {"summaries": summaries.delete()[0], "turns": turns.delete()[0]}
    empty = subjects.filter(summaries__isnull=True, turns__isnull=True)
    counts["subjects"] = MemorySubject.objects.filter(pk__in=list(empty.values_list("pk", flat=True))).delete()[0]
    return counts


def memory_purge(*, now: datetime | None = None, batch: int = 5000) -> int:
    """Delete summaries and unsummarized turns past their retention, in batches; returns how many."""
    now = now or timezone.now()
    deleted = 0
    for model in (SessionTurn, MemorySummary):
        while True:
            pks = list(model.objects.filter(expires_at__lt=now).order_by("pk").values_list("pk", flat=True)[:batch])
            if not pks:
                break
            deleted += model.objects.filter(pk__in=pks).delete()[0]
    return deleted


def summary_charge(*, spend_event: dict[str, Any]) -> int:
    """Charge a summarization that produced no summary (the upstream call was made all the same)."""
    return spend_record_batch(events=[spend_event])
